/**
 * The Envoy admin API client, with the few calls the supervisor makes: whether
 * an epoch has finished loading its configuration (admin answers only once the
 * main loop runs, which is after the bootstrap loaded), draining listeners
 * before a stop, and counting the downstream connections still open. The HTTP
 * call is injectable so unit tests need no Envoy.
 */

export interface AdminResponse {
  status: number;
  body: string;
}

/** One request to the admin API at `address` (host:port). */
export type AdminRequest = (address: string, method: 'GET' | 'POST', apiPath: string) => Promise<AdminResponse>;

export const httpAdmin: AdminRequest = async (address, method, apiPath) => {
  const response = await fetch(`http://${address}${apiPath}`, { method, signal: AbortSignal.timeout(2_000) });
  return { status: response.status, body: await response.text() };
};

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
