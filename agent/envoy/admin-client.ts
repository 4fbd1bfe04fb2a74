/**
 * The Envoy admin API client, with the few calls the supervisor makes: whether
 * an epoch has finished loading its configuration (admin answers only once the
 * main loop runs, which is after the bootstrap loaded), draining listeners
 * before a stop, and counting the downstream connections still open. The HTTP
 * call is injectable so unit tests need no Envoy.
 */
import type { Clock, TimerHandle } from '../../lib/clock.js';
import { httpRequest } from '../../lib/http-request.js';
import type { Logger } from '../../lib/logger.js';
import type { LaunchedProcess } from './process-launcher.js';

export interface AdminResponse {
  status: number;
  body: string;
}

/** One request to the admin API at `address` (host:port). */
export type AdminRequest = (address: string, method: 'GET' | 'POST', apiPath: string) => Promise<AdminResponse>;

/** node:http, not fetch (lib/http-request.ts says why); admin answers are read whole (a /stats text of a large mesh is megabytes). */
export const httpAdmin: AdminRequest = (address, method, apiPath) =>
  httpRequest(`http://${address}${apiPath}`, { method, timeoutMs: 2_000, maxBodyBytes: 256 * 1024 * 1024, maxRedirects: 0 });

/** True when admin answers /server_info (the epoch got past loading its bootstrap). */
export async function adminAnswers(admin: AdminRequest, address: string): Promise<boolean> {
  try {
    return (await admin(address, 'GET', '/server_info')).status === 200;
  } catch {
    return false;
  }
}

/** Starts a graceful drain (listeners stay open for --drain-time-s, then close). */
export async function drainListeners(admin: AdminRequest, address: string): Promise<void> {
  const { status, body } = await admin(address, 'POST', '/drain_listeners?graceful');
  if (status !== 200) throw new Error(`admin /drain_listeners: HTTP ${status}: ${body.trim()}`);
}

/**
 * Sums the `listener.<name>.downstream_cx_active` and `http.<prefix>.downstream_cx_active`
 * gauges from /stats text, leaving out admin (our own poll is one of its
 * connections) and the per-worker copies of the listener gauges.
 */
export function activeDownstream(statsText: string): number {
  let total = 0;
  for (const line of statsText.split('\n')) {
    const match = /^((?:listener|http)\.(.+)\.downstream_cx_active): (\d+)$/.exec(line.trim());
    if (match === null) continue;
    const scope = match[2] as string;
    if (scope === 'admin' || /(^|\.)(worker_\d+|main_thread)$/.test(scope)) continue;
    total += Number(match[3]);
  }
  return total;
}

export async function activeConnections(admin: AdminRequest, address: string): Promise<number> {
  const { status, body } = await admin(address, 'GET', '/stats?filter=downstream_cx_active');
  if (status !== 200) throw new Error(`admin /stats: HTTP ${status}`);
  return activeDownstream(body);
}

const DRAIN_POLL_MS = 100;

/**
 * stop()'s drain: listeners drain gracefully, then this waits (polling every
 * 100 ms of the clock) until no downstream connection is left, the drain time
 * passed, or the process is gone. Admin failing ends the wait: the process is
 * stopped anyway.
 */
export async function drainConnections(
  admin: AdminRequest,
  address: string,
  proc: Pick<LaunchedProcess, 'pid' | 'exit' | 'onGone'>,
  options: { clock: Clock; log: Logger; drainTimeMs: number },
): Promise<void> {
  const { clock, log, drainTimeMs } = options;
  try {
    await drainListeners(admin, address);
  } catch (err) {
    log.warn('could not drain Envoy listeners; stopping it anyway', { error: err });
    return;
  }
  const deadline = clock.now() + drainTimeMs;
  let timer: TimerHandle | undefined;
  let wake: (() => void) | undefined;
  proc.onGone(() => {
    timer?.cancel();
    wake?.();
  });
  log.info('draining Envoy listeners', { pid: proc.pid, drainTimeMs });
  while (proc.exit() === undefined) {
    let active: number;
    try {
      active = await activeConnections(admin, address);
    } catch (err) {
      log.warn('could not read Envoy connection stats; stopping it anyway', { error: err });
      return;
    }
    if (active === 0) return log.info('no downstream connection is left; stopping Envoy', { pid: proc.pid });
    const left = deadline - clock.now();
    if (left <= 0) return log.info('drain time is over with connections still open', { active });
    await new Promise<void>((resolve) => {
      wake = resolve;
      timer = clock.setTimer(Math.min(DRAIN_POLL_MS, left), resolve);
    });
  }
}
