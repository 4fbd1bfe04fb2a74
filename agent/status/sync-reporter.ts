/**
 * Sends the node's status report (sync-report.ts) to the control plane over
 * the agent's own mTLS connection (NodeStatus.Report): at once when it
 * changed, else as a heartbeat at the interval the control plane asks for.
 *
 * - Every `checkMs` (and soon after `poke()`, e.g. an ACK, a NACK, a
 *   rebuild) the report is made again; it is sent when its key differs from
 *   the last one sent, or the heartbeat is due. One call at a time.
 * - A failed send is retried with backoff (capped at the heartbeat); a new
 *   client (renewal, reconnect) sends at once.
 * - A control plane without the service (MESH_E_CONTROLPLANE_UNSUPPORTED) is
 *   asked again only once per heartbeat; it is logged once.
 */
import { type BackoffPolicy, backoffDelay } from '../../lib/backoff.js';
import type { Clock, TimerHandle } from '../../lib/clock.js';
import { toMeshError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import type { NodeStatusReportWire } from '../../lib/proto/node-status.js';
import type { ControlPlaneLink } from '../identity/cp-connection.js';
import { reportKey } from './sync-report.js';

export interface SyncReporterOptions {
  link: ControlPlaneLink;
  /** Makes the current report. */
  report(): NodeStatusReportWire;
  clock: Clock;
  log: Logger;
  /** How often the report is made again to see whether it changed; default 1 s. */
  checkMs?: number;
  /** Until the control plane says otherwise; default 10 s. */
  heartbeatMs?: number;
  backoff?: BackoffPolicy;
  random?: () => number;
}

export interface SyncReporter {
  start(): void;
  /** Something the report shows may have changed: check soon. */
  poke(): void;
  stop(): void;
  /** For status and tests: the last report sent and when, and the last error. */
  state(): { sentAt?: number; heartbeatMs: number; lastError?: string; sent: number };
}

export function createSyncReporter(options: SyncReporterOptions): SyncReporter {
  const { link, clock, log } = options;
  const checkMs = options.checkMs ?? 1_000;
  const backoff = options.backoff ?? { initialMs: 500, maxMs: 30_000 };
  let heartbeatMs = options.heartbeatMs ?? 10_000;
  let lastKey: string | undefined;
  let sentAt: number | undefined;
  let sent = 0;
  let lastError: string | undefined;
  let failures = 0;
  let notBefore = 0;
  let inflight = false;
  let stopped = true;
  let tick: TimerHandle | undefined;
  let soon: TimerHandle | undefined;
  let offClient: (() => void) | undefined;

  const check = () => {
    if (stopped || inflight) return;
    const client = link.client();
    const now = clock.now();
    if (client?.reportStatus === undefined || now < notBefore) return;
    let report: NodeStatusReportWire;
    try {
      report = options.report();
    } catch (err) {
      log.error('cannot make the status report', { error: err });
      return;
    }
    const key = reportKey(report);
    if (key === lastKey && sentAt !== undefined && now - sentAt < heartbeatMs) return;
    inflight = true;
    client.reportStatus(report).then(
      (answer) => {
        inflight = false;
        if (answer.heartbeatMs > 0) heartbeatMs = answer.heartbeatMs;
        if (lastError !== undefined) log.info('status reports reach the control plane again', {});
        lastKey = key;
        sentAt = clock.now();
        sent += 1;
        failures = 0;
        lastError = undefined;
      },
      (err: unknown) => {
        inflight = false;
        const e = toMeshError(err);
        if (e.message !== lastError) {
          if (e.code === 'MESH_E_CONTROLPLANE_UNSUPPORTED')
            log.info('the control plane takes no status reports; retried each heartbeat', {});
          else log.warn('status report not delivered; retrying', { code: e.code, error: e.message });
        }
        lastError = e.message;
        failures += 1;
        const delay =
          e.code === 'MESH_E_CONTROLPLANE_UNSUPPORTED'
            ? heartbeatMs
            : Math.min(heartbeatMs, backoffDelay(backoff, failures - 1, options.random));
        notBefore = clock.now() + delay;
      },
    );
  };

  const loop = () => {
    if (stopped) return;
    check();
    tick = clock.setTimer(checkMs, loop);
  };

  return {
    start() {
      if (!stopped) return;
      stopped = false;
      offClient = link.onClient(() => {
        // A new connection: the control plane may be another (restarted) one; tell it everything at once.
        lastKey = undefined;
        notBefore = 0;
        failures = 0;
        this.poke();
      });
      loop();
    },
    poke() {
      if (stopped || soon !== undefined) return;
      soon = clock.setTimer(50, () => {
        soon = undefined;
        check();
      });
    },
    stop() {
      stopped = true;
      tick?.cancel();
      soon?.cancel();
      offClient?.();
    },
    state: () => ({
      ...(sentAt === undefined ? {} : { sentAt }),
      heartbeatMs,
      ...(lastError === undefined ? {} : { lastError }),
      sent,
    }),
  };
}
