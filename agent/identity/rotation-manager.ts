/**
 * Keeps the agent's SVIDs (the node SVID and one per workload) renewed. Each
 * credential is added with its current certificate times and a `renew()` that
 * obtains a new one; the manager renews it at rotateAt (50% of its life +/- 10%)
 * and hands every new certificate to the onRenewed listeners (the data plane
 * pushes it to Envoy over SDS from there).
 *
 * Failures: a failed renewal is retried after retryDelay: 1 s doubling to 60 s,
 * "equal jitter" (half fixed, half random), and while the current certificate
 * still works never later than half of the time it has left (with a 1 s
 * floor), so attempts get denser as expiry nears instead of jumping past it.
 * Past expiry it keeps retrying every <= 60 s for as long as the control plane
 * is down; status() shows the failures and the last error.
 *
 * Suspend: timers do not run while a host sleeps (Node's timers follow the
 * monotonic clock, which stops), so after a long suspend a renewal timer may
 * fire hours late. A watchdog timer every `watchdogMs` (10 s) and every renewal
 * timer check the wall clock and renew at once each credential whose renewal
 * time has passed, expired or not. Timers exist only while credentials do;
 * remove() and stop() cancel them, and late answers of removed credentials are
 * dropped.
 *
 * retryFailed(): when the owner learns that the control plane answers again,
 * every credential whose last attempt failed is renewed at once instead of
 * after its backoff.
 */

import { X509Certificate } from 'node:crypto';
import { type BackoffPolicy, backoffDelay } from '../../lib/backoff.js';
import type { Clock, TimerHandle } from '../../lib/clock.js';
import { MeshError, toMeshError } from '../../lib/errors.js';
import { type Logger, silentLogger } from '../../lib/logger.js';
import { type CertTimes, DEFAULT_ROTATE_JITTER, DEFAULT_ROTATE_RATIO, rotateAt } from './rotate-at.js';

export interface IssuedCert extends CertTimes {
  readonly serial: string;
}

export interface CredentialStatus {
  readonly name: string;
  readonly serial: string;
  readonly notAfter: number;
  readonly nextRenewalAt: number;
  readonly lastError?: string;
  readonly failures: number;
}

export interface RenewedEvent<C extends IssuedCert> {
  readonly name: string;
  readonly cert: C;
}

export interface RotationManagerOptions {
  clock: Clock;
  log?: Logger;
  /** Renewal point and jitter as fractions of the lifetime (rotateAt). */
  ratio?: number;
  jitter?: number;
  backoff?: BackoffPolicy;
  watchdogMs?: number;
  random?: () => number;
  /** Each failed renewal of a credential (metrics count them). */
  onRenewalFailed?: (name: string) => void;
}

export interface RotationManager<C extends IssuedCert = IssuedCert> {
  /** Manages a credential; throws if the name is taken or the manager stopped. */
  add(name: string, current: C, renew: () => Promise<C>): void;
  /** Stops managing a credential; false if it was not managed. */
  remove(name: string): boolean;
  status(): readonly CredentialStatus[];
  /** Calls listener with each renewed certificate; returns the unsubscribe function. */
  onRenewed(listener: (event: RenewedEvent<C>) => void): () => void;
  /** Renews at once every credential whose last attempt failed and is not being renewed. */
  retryFailed(): void;
  stop(): void;
}

/** The IssuedCert of a chain's leaf (the serial the control plane reported, else the leaf's). */
export function leafTimes(chainPem: string, serial?: string): IssuedCert {
  const leaf = new X509Certificate(chainPem);
  return { serial: serial ?? leaf.serialNumber, notBefore: Date.parse(leaf.validFrom), notAfter: Date.parse(leaf.validTo) };
}

export const DEFAULT_RETRY_BACKOFF: BackoffPolicy = Object.freeze({ initialMs: 1_000, maxMs: 60_000 });
export const DEFAULT_WATCHDOG_MS = 10_000;

/** Delay before retry number `failures` (1, 2, ...) of a credential valid for `msLeft` more. Pure. */
export function retryDelay(policy: BackoffPolicy, failures: number, msLeft: number, random: () => number = Math.random): number {
  const delay = backoffDelay(policy, Math.max(0, failures - 1), random);
  return msLeft > 0 ? Math.min(delay, Math.max(policy.initialMs, Math.floor(msLeft / 2))) : delay;
}

interface Entry<C extends IssuedCert> {
  readonly name: string;
  readonly renew: () => Promise<C>;
  cert: C;
  nextAt: number;
  failures: number;
  lastError: string | undefined;
  timer: TimerHandle | undefined;
  renewing: boolean;
  removed: boolean;
}

export function createRotationManager<C extends IssuedCert = IssuedCert>(options: RotationManagerOptions): RotationManager<C> {
  const { clock } = options;
  const log = options.log ?? silentLogger;
  const ratio = options.ratio ?? DEFAULT_ROTATE_RATIO;
  const jitter = options.jitter ?? DEFAULT_ROTATE_JITTER;
  const backoff = options.backoff ?? DEFAULT_RETRY_BACKOFF;
  const watchdogMs = options.watchdogMs ?? DEFAULT_WATCHDOG_MS;
  const random = options.random ?? Math.random;
  const entries = new Map<string, Entry<C>>();
  const listeners = new Set<(event: RenewedEvent<C>) => void>();
  let watchdog: TimerHandle | undefined;
  let expectedTick = 0;
  let stopped = false;

  const iso = (ms: number) => new Date(ms).toISOString();

  const schedule = (entry: Entry<C>, at: number) => {
    entry.timer?.cancel();
    entry.nextAt = at;
    entry.timer = clock.setTimer(Math.max(0, at - clock.now()), () => {
      entry.timer = undefined;
      check();
    });
  };

  const armWatchdog = () => {
    watchdog?.cancel();
    watchdog = undefined;
    if (stopped || entries.size === 0) return;
    expectedTick = clock.now() + watchdogMs;
    watchdog = clock.setTimer(watchdogMs, () => {
      watchdog = undefined;
      const late = clock.now() - expectedTick;
      if (late > watchdogMs) log.warn('timers fired late (host suspended?); checking credentials', { lateMs: late });
      check();
      armWatchdog();
    });
  };

  /** Renews at once every credential whose renewal time has passed. */
  const check = () => {
    const now = clock.now();
    for (const entry of entries.values()) {
      if (!entry.renewing && entry.nextAt <= now) startRenewal(entry);
    }
  };

  const succeeded = (entry: Entry<C>, cert: C) => {
    const now = clock.now();
    if (!(Number.isFinite(cert.notBefore) && cert.notAfter > cert.notBefore && typeof cert.serial === 'string')) {
      throw new MeshError('MESH_E_CERT_INVALID', 'the renewed certificate has no valid lifetime or serial');
    }
    if (cert.notAfter <= now) {
      throw new MeshError('MESH_E_CERT_INVALID', `the renewed certificate expired at ${iso(cert.notAfter)}; check the clocks`);
    }
    entry.cert = cert;
    entry.failures = 0;
    entry.lastError = undefined;
    // The floor keeps a certificate that is already near its end from renewing in a tight loop.
    schedule(entry, Math.max(rotateAt(cert, ratio, jitter, random), now + backoff.initialMs));
    log.info('credential renewed', { credential: entry.name, serial: cert.serial, notAfter: iso(cert.notAfter), next: iso(entry.nextAt) });
    for (const listener of listeners) {
      try {
        listener({ name: entry.name, cert });
      } catch (err) {
        log.error('a renewal listener failed', { credential: entry.name, error: toMeshError(err) });
      }
    }
  };

  const failed = (entry: Entry<C>, err: unknown) => {
    const error = toMeshError(err, 'MESH_E_CONTROLPLANE_UNAVAILABLE');
    const now = clock.now();
    entry.failures += 1;
    options.onRenewalFailed?.(entry.name);
    entry.lastError = `${error.code}: ${error.message}`;
    const msLeft = entry.cert.notAfter - now;
    schedule(entry, now + retryDelay(backoff, entry.failures, msLeft, random));
    const fields = { credential: entry.name, failures: entry.failures, retryAt: iso(entry.nextAt), error };
    if (msLeft <= 0) log.error('credential expired and renewal keeps failing', { ...fields, expiredAt: iso(entry.cert.notAfter) });
    else log.warn('credential renewal failed; retrying', fields);
  };

  const startRenewal = (entry: Entry<C>) => {
    entry.timer?.cancel();
    entry.timer = undefined;
    entry.renewing = true;
    let pending: Promise<C>;
    try {
      pending = entry.renew();
    } catch (err) {
      pending = Promise.reject(err);
    }
    pending
      .then(
        (cert) => {
          entry.renewing = false;
          if (!entry.removed) succeeded(entry, cert);
        },
        (err: unknown) => {
          entry.renewing = false;
          if (!entry.removed) failed(entry, err);
        },
      )
      .catch((err: unknown) => {
        if (!entry.removed) failed(entry, err);
      })
      .catch((err: unknown) => log.error('credential rotation failed unexpectedly', { credential: entry.name, error: toMeshError(err) }));
  };

  const remove = (name: string): boolean => {
    const entry = entries.get(name);
    if (entry === undefined) return false;
    entry.removed = true;
    entry.timer?.cancel();
    entry.timer = undefined;
    entries.delete(name);
    if (entries.size === 0) armWatchdog();
    return true;
  };

  return {
    add(name, current, renew) {
      if (stopped) throw new MeshError('MESH_E_INTERNAL', `cannot add credential ${name}: the rotation manager is stopped`);
      if (entries.has(name)) throw new MeshError('MESH_E_INTERNAL', `credential ${name} is already managed; remove it first`);
      const entry: Entry<C> = {
        name,
        renew,
        cert: current,
        nextAt: 0,
        failures: 0,
        lastError: undefined,
        timer: undefined,
        renewing: false,
        removed: false,
      };
      entries.set(name, entry);
      schedule(entry, rotateAt(current, ratio, jitter, random));
      if (watchdog === undefined) armWatchdog();
      log.info('credential added', { credential: name, serial: current.serial, notAfter: iso(current.notAfter), next: iso(entry.nextAt) });
    },
    remove,
    status() {
      return [...entries.values()]
        .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
        .map((e) => {
          const base = { name: e.name, serial: e.cert.serial, notAfter: e.cert.notAfter, nextRenewalAt: e.nextAt, failures: e.failures };
          return Object.freeze(e.lastError === undefined ? base : { ...base, lastError: e.lastError });
        });
    },
    onRenewed(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    retryFailed() {
      for (const entry of entries.values()) if (entry.failures > 0 && !entry.renewing) startRenewal(entry);
    },
    stop() {
      stopped = true;
      for (const name of [...entries.keys()]) remove(name);
      armWatchdog();
    },
  };
}
