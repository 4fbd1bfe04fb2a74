/** Shared pieces of the rotation manager tests: a fake issuer and a manager on a fake clock. */
import type { IssuedCert, RenewedEvent } from '../../../agent/identity/rotation-manager.js';
import { createRotationManager } from '../../../agent/identity/rotation-manager.js';
import { MeshError } from '../../../lib/errors.js';
import { createLogger } from '../../../lib/logger.js';
import { FakeClock } from '../../fakes/clock.js';
import { waitFor } from '../../support/wait.js';

export const SEC = 1_000;
export const MIN = 60 * SEC;
export const HOUR = 60 * MIN;

/** Waits until cond holds (polled, with a deadline): for work that includes real disk writes. */
export const until = (cond: () => boolean | Promise<boolean>, what: string) =>
  waitFor(async () => ((await cond()) ? true : undefined), { intervalMs: 5, timeoutMs: 10_000, what });

export interface PemCert extends IssuedCert {
  pem: string;
}

/** A control plane that issues certificates of `ttl` from now, or fails while `down`. */
export class FakeIssuer {
  down = false;
  serial = 100;
  readonly calls: { name: string; at: number }[] = [];
  constructor(
    private readonly clock: FakeClock,
    private readonly ttl = HOUR,
  ) {}
  cert(): PemCert {
    const now = this.clock.now();
    this.serial += 1;
    return { notBefore: now, notAfter: now + this.ttl, serial: this.serial.toString(16).toUpperCase(), pem: `PEM ${this.serial}` };
  }
  renewer(name: string): () => Promise<PemCert> {
    return async () => {
      this.calls.push({ name, at: this.clock.now() });
      if (this.down) throw new MeshError('MESH_E_CONTROLPLANE_UNAVAILABLE', 'connection refused');
      return this.cert();
    };
  }
}

export function setup(opts: { ttl?: number; random?: () => number; onRenewalFailed?: (name: string) => void } = {}) {
  const clock = new FakeClock();
  const issuer = new FakeIssuer(clock, opts.ttl);
  const lines: string[] = [];
  const log = createLogger({ sink: { write: (l) => lines.push(l) }, clock });
  const manager = createRotationManager<PemCert>({
    clock,
    log,
    random: opts.random ?? (() => 0.5),
    ...(opts.onRenewalFailed === undefined ? {} : { onRenewalFailed: opts.onRenewalFailed }),
  });
  const events: RenewedEvent<PemCert>[] = [];
  manager.onRenewed((e) => events.push(e));
  return { clock, issuer, lines, manager, events };
}
