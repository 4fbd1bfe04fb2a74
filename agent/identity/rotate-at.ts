/**
 * When to renew a certificate: after `ratio` of its lifetime has passed, moved
 * by up to `jitter` of the lifetime either way (uniformly), so that a fleet of
 * agents started together does not renew in step. The defaults are SPIRE's
 * (50% +/- 10%); Istio renews at 50% plus jitter.
 *
 * The answer is clamped into [notBefore, notAfter - margin], the margin being
 * ROTATE_MARGIN_MS or a tenth of the lifetime for short-lived certificates, so
 * a renewal is always asked for while the current certificate still works.
 * A certificate with no lifetime (notAfter <= notBefore) renews at notBefore,
 * that is at once. Pure: the same input and random source give the same time.
 */
import { MeshError } from '../../lib/errors.js';

export interface CertTimes {
  /** Milliseconds since the Unix epoch. */
  readonly notBefore: number;
  /** Milliseconds since the Unix epoch. */
  readonly notAfter: number;
}

/** The latest a renewal is scheduled before expiry (less for lifetimes under 10 minutes). */
export const ROTATE_MARGIN_MS = 60_000;

export const DEFAULT_ROTATE_RATIO = 0.5;
export const DEFAULT_ROTATE_JITTER = 0.1;

/** The margin kept before notAfter for a certificate of this lifetime. */
export function rotateMargin(lifetimeMs: number): number {
  return Math.min(ROTATE_MARGIN_MS, Math.max(0, lifetimeMs) / 10);
}

/** The time (ms since the epoch) at which to renew `cert`. */
export function rotateAt(
  cert: CertTimes,
  ratio = DEFAULT_ROTATE_RATIO,
  jitter = DEFAULT_ROTATE_JITTER,
  random: () => number = Math.random,
): number {
  if (!Number.isFinite(cert.notBefore) || !Number.isFinite(cert.notAfter)) {
    throw new MeshError('MESH_E_CERT_INVALID', 'a certificate validity time is not a finite number of milliseconds', {
      details: { notBefore: cert.notBefore, notAfter: cert.notAfter },
    });
  }
  if (!(ratio > 0 && ratio < 1) || !(jitter >= 0 && jitter < 1)) {
    throw new MeshError('MESH_E_CONFIG_INVALID', 'the renewal ratio must be in (0, 1) and the jitter in [0, 1)', {
      details: { ratio, jitter },
    });
  }
  const lifetime = cert.notAfter - cert.notBefore;
  if (lifetime <= 0) return cert.notBefore;
  const r = Math.min(1, Math.max(0, random()));
  const offset = (ratio + jitter * (2 * r - 1)) * lifetime;
  const latest = cert.notAfter - rotateMargin(lifetime);
  return Math.floor(Math.min(latest, Math.max(cert.notBefore, cert.notBefore + offset)));
}
