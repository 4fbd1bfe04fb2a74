/**
 * Requests through a caller's local upstream port, tallied by which echo app
 * (test/support/mesh-apps.ts) answered: what the secure-naming tests count.
 * A request that does not get 200 from an app is `failed` (closed by the mesh).
 * Also what Envoy's admin /clusters says the endpoints of a cluster are.
 */

/** One request: the app that answered and the peer URI it saw in x-forwarded-client-cert, or `failed (...)`. */
export async function callApp(port: number, host = '127.0.0.1'): Promise<{ who: string; peer?: string }> {
  try {
    const res = await fetch(`http://${host}:${port}/`, { signal: AbortSignal.timeout(5_000) });
    const body = await res.text();
    if (res.status !== 200) return { who: `failed (${res.status})` };
    const answer = JSON.parse(body) as { app: string; xfcc: string };
    const peer = /(?:^|;)URI=([^;,]+)/.exec(answer.xfcc)?.[1];
    return peer === undefined ? { who: answer.app } : { who: answer.app, peer };
  } catch (err) {
    return { who: `failed (${(err as Error).message})` };
  }
}

/** One request: the app that answered, or `failed (...)`. */
export async function call(port: number): Promise<string> {
  return (await callApp(port)).who;
}

export interface CallTally {
  /** Answers by app name, and `failed`. */
  counts: Record<string, number>;
  /** app name -> the distinct peer SPIFFE IDs it saw in x-forwarded-client-cert. */
  peers: Record<string, string[]>;
}

/** n requests one after the other, tallied. */
export async function tallyCalls(port: number, n: number, host = '127.0.0.1'): Promise<CallTally> {
  const counts: Record<string, number> = {};
  const peers: Record<string, string[]> = {};
  for (let i = 0; i < n; i++) {
    const { who, peer } = await callApp(port, host);
    const key = who.startsWith('failed') ? 'failed' : who;
    counts[key] = (counts[key] ?? 0) + 1;
    if (peer !== undefined) {
      const seen = peers[key] ?? [];
      if (!seen.includes(peer)) seen.push(peer);
      peers[key] = seen;
    }
  }
  return { counts, peers };
}

/** n requests, counted by the app that answered (and `failed`). */
export async function calls(port: number, n: number): Promise<Record<string, number>> {
  return (await tallyCalls(port, n)).counts;
}

/** The host:port endpoints of one cluster in the text of Envoy's admin /clusters, sorted. */
export function clusterEndpoints(clustersText: string, cluster: string): string[] {
  const hosts = new Set<string>();
  const prefix = `${cluster}::`;
  for (const line of clustersText.split('\n')) {
    if (!line.startsWith(prefix)) continue;
    const m = /^([0-9.]+:\d+)::/.exec(line.slice(prefix.length));
    if (m) hosts.add(m[1] as string);
  }
  return [...hosts].sort();
}
