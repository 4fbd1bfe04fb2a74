/**
 * Whether Envoy can take captured traffic: an Envoy epoch serves (running,
 * or hot-restarting: the old epoch serves on), and it has accepted its
 * capture listeners (names starting `capture:`) at some version. A snapshot
 * without capture listeners needs any accepted listener (Envoy configured).
 * Accepted at some version, not the newest: a newer configuration waiting
 * for its ACK, or rejected, leaves Envoy serving the older one, and must not
 * lift capture under failurePolicy open.
 */
const SERVING = new Set(['running', 'hot-restarting']);
export const CAPTURE_LISTENER_PREFIX = 'capture:';

export interface ReadinessInput {
  readonly envoyState: string;
  /** Listener names of the snapshot served; undefined before the first. */
  readonly servedListeners: Iterable<string> | undefined;
  readonly ackedListeners: { has(name: string): boolean; readonly size: number };
}

export function captureReady(input: ReadinessInput): boolean {
  if (!SERVING.has(input.envoyState)) return false;
  if (input.servedListeners === undefined) return false;
  const capture = [...input.servedListeners].filter((n) => n.startsWith(CAPTURE_LISTENER_PREFIX));
  if (capture.length === 0) return input.ackedListeners.size > 0;
  return capture.every((n) => input.ackedListeners.has(n));
}
