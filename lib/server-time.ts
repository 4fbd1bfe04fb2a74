/**
 * The control plane puts its clock on every answer of its network API
 * (response header, and the trailers of an error), so an agent can measure
 * clock skew without a state-changing call: `mesh-agent doctor` does.
 */
export const SERVER_TIME_HEADER = 'mesh-server-time-ms';

/**
 * Our clock minus the server's, assuming the server read its clock halfway
 * through the round trip; `uncertaintyMs` is half the round trip.
 */
export function clockSkew(t: { serverMs: number; sentMs: number; receivedMs: number }): { skewMs: number; uncertaintyMs: number } {
  const midpoint = (t.sentMs + t.receivedMs) / 2;
  return { skewMs: Math.round(midpoint - t.serverMs), uncertaintyMs: Math.round((t.receivedMs - t.sentMs) / 2) };
}
