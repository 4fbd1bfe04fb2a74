/**
 * The admin-API side of bench/vs-consul, the same for both Envoys: wait until
 * ready (every upstream cluster with all endpoints healthy, timed from the
 * Envoy process's start in /proc), one health flip timed on each Envoy until
 * its EDS config_dump shows exactly that endpoint gone or back, the rx bytes
 * of the xDS cluster, and the `update_rejected` stats.
 */
import { parseStats } from '../../test/support/envoy.js';
import { httpGet, waitFor } from '../../test/support/wait.js';
import { clusterEndpoints, exactNameRegex, rejectedStatCount, rejectedUpdates, updateTimeFilter } from './envoy-dump.js';
import { processStartMs } from './proc-start.js';
import { nodeAddress } from './xds-fixtures.js';

const POLL_MS = 2;
const FLIP_TIMEOUT_MS = 10_000;

export interface BenchEnvoy {
  /** "ours" or "Consul's", for messages. */
  readonly name: string;
  /** http://127.0.0.1:<admin port> */
  readonly adminUrl: string;
  /** The Envoy process, once known. */
  pid(): Promise<number | undefined>;
  /** The `/stats?filter=` regex of the upstream clusters' membership_healthy gauges. */
  readonly readyStat: string;
}

async function admin(e: BenchEnvoy, apiPath: string): Promise<string> {
  const { status, body } = await httpGet(`${e.adminUrl}${apiPath}`);
  if (status !== 200) throw new Error(`${e.name} Envoy admin ${apiPath.split('?')[0]}: HTTP ${status}`);
  return body;
}

export async function stats(e: BenchEnvoy, filter: string): Promise<Map<string, number>> {
  return parseStats(await admin(e, `/stats?filter=${encodeURIComponent(filter)}`));
}

/** The full config dump without EDS (bootstrap, clusters, listeners, routes). */
export async function fullDump(e: BenchEnvoy): Promise<{ configs?: Array<Record<string, unknown> & { '@type'?: string }> }> {
  return JSON.parse(await admin(e, '/config_dump')) as { configs?: Array<Record<string, unknown> & { '@type'?: string }> };
}

export interface Ready {
  /** Envoy process start -> ready, ms. */
  readyMs: number;
  pid: number;
  /** When it was seen ready, ms since the epoch. */
  readyAt: number;
}

/** Polls (every 100 ms) until `clusters` upstream clusters have `endpoints` healthy members. */
export async function waitEnvoyReady(
  e: BenchEnvoy,
  o: { clusters: number; endpoints: number; fatal: () => string | undefined; timeoutMs?: number },
): Promise<Ready> {
  return waitFor(
    async () => {
      const pid = await e.pid();
      if (pid === undefined) return undefined;
      const members = await stats(e, e.readyStat);
      const full = [...members.values()].filter((v) => v === o.endpoints).length;
      if (full < o.clusters) return undefined;
      const now = Date.now();
      return { readyMs: now - processStartMs(pid), pid, readyAt: now };
    },
    {
      timeoutMs: o.timeoutMs ?? 180_000,
      intervalMs: 100,
      what: `${e.name} Envoy with ${o.clusters} upstream clusters of ${o.endpoints} healthy endpoints`,
      fatal: o.fatal,
    },
  );
}

/** `cluster.<xds cluster>.upstream_cx_rx_bytes_total` from a stats map. */
export function rxOf(byCluster: ReadonlyMap<string, number>, adsCluster: string): number {
  const value = byCluster.get(`cluster.${adsCluster}.upstream_cx_rx_bytes_total`);
  if (value === undefined) throw new Error(`no upstream_cx_rx_bytes_total for cluster ${adsCluster}`);
  return value;
}

export async function rxBytes(e: BenchEnvoy, adsCluster: string): Promise<number> {
  return rxOf(await stats(e, '\\.upstream_cx_rx_bytes_total$'), adsCluster);
}

/** How many subscriptions (CDS, LDS, each cluster's EDS) gave up waiting for their first answer (Envoy's initial_fetch_timeout, 15 s by default). */
export async function initFetchTimeouts(e: BenchEnvoy): Promise<number> {
  return [...(await stats(e, 'init_fetch_timeout$')).values()].reduce((n, v) => n + v, 0);
}

/** The sum of every `update_rejected` stat, and how many there are. */
export async function nackCount(e: BenchEnvoy): Promise<{ rejected: number; stats: number; names: string[] }> {
  const all = await stats(e, 'update_rejected$');
  const bad = rejectedUpdates(all);
  return { rejected: bad.reduce((n, [, v]) => n + v, 0), stats: rejectedStatCount(all), names: bad.map(([n]) => n) };
}

export interface FlipSide {
  envoy: BenchEnvoy;
  /** The EDS resource name (the cluster_name of its ClusterLoadAssignment). */
  cluster: string;
  /** The cluster itself (CDS name): its stats hold the EDS subscription's update_time. */
  statCluster: string;
  /** Durations of this side's admin polls during the flip are added here (the measurement's resolution). */
  polls: number[];
}

async function endpointsOf(side: FlipSide) {
  const body = await admin(
    side.envoy,
    `/config_dump?include_eds&resource=dynamic_endpoint_configs&name_regex=${encodeURIComponent(exactNameRegex(side.cluster))}`,
  );
  const eps = clusterEndpoints(body, side.cluster);
  if (eps === undefined) throw new Error(`${side.envoy.name} Envoy has no endpoints for ${side.cluster}`);
  return eps;
}

/** One side's figures for one flip, ms after the write started. */
export interface FlipTimes {
  /** The end of the first admin poll that showed the flip (the poll's own time included). */
  shown: number;
  /**
   * When Envoy applied it: the cluster's `update_time` gauge (set by Envoy when its EDS
   * subscription accepted the update, ms resolution, read once the poll showed the flip),
   * taken as its upper bound (+1 ms).
   */
  applied: number;
}

/**
 * One flip of instance `node`: checks that every Envoy is in the state before it,
 * calls `write` (one Consul write) and polls each Envoy (every 2 ms, each on its own)
 * until each shows exactly that endpoint gone (critical) or back (passing), then
 * reads (once all showed it) when each Envoy applied it. Returns ms from just before the write, per
 * side; a miss, a wrong endpoint, or an update_time outside [write, shown] throws.
 */
export async function flipOnce(o: {
  node: number;
  sides: readonly FlipSide[];
  instances: number;
  status: 'critical' | 'passing';
  /** One Consul write; started at `t0` (performance.now(), just before it). */
  write: (t0: number) => Promise<void>;
  /** The pause between two polls of one Envoy; default 2 ms. */
  pollMs?: number;
}): Promise<FlipTimes[]> {
  const address = nodeAddress(o.node);
  const has = (healthy: readonly string[]) => healthy.some((h) => h.startsWith(`${address}:`));
  const before = o.status === 'critical' ? o.instances : o.instances - 1;
  for (const side of o.sides) {
    const eps = await endpointsOf(side);
    if (eps.healthy.length !== before) {
      throw new Error(`${side.envoy.name}: ${side.cluster} has ${eps.healthy.length} healthy endpoints before the flip, not ${before}`);
    }
  }
  const t0 = performance.now();
  /** The write's start on the epoch clock (Envoy's update_time is epoch ms). */
  const wall0 = performance.timeOrigin + t0;
  await o.write(t0);
  // Each Envoy is polled on its own cadence until it shows the flip, so a slow side neither delays nor speeds up the other's polls.
  const watch = async (side: FlipSide): Promise<number> => {
    for (;;) {
      const p0 = performance.now();
      const eps = await endpointsOf(side);
      const at = performance.now() - t0;
      side.polls.push(at + t0 - p0);
      const n = eps.healthy.length;
      if (n !== before) {
        const wrong = o.status === 'critical' ? n !== o.instances - 1 || has(eps.healthy) : n !== o.instances || !has(eps.healthy);
        if (wrong) {
          throw new Error(
            `${side.envoy.name}: ${side.cluster} went from ${before} to ${n} healthy endpoints, not exactly ${address} ` +
              `${o.status === 'critical' ? 'gone' : 'back'}: ${eps.healthy.join(', ')}`,
          );
        }
        return at;
      }
      if (performance.now() - t0 > FLIP_TIMEOUT_MS) {
        throw new Error(`flip of ${address} to ${o.status} not shown within ${FLIP_TIMEOUT_MS} ms by ${side.envoy.name} (${side.cluster})`);
      }
      await new Promise((r) => setTimeout(r, o.pollMs ?? POLL_MS));
    }
  };
  const shown = await Promise.all(o.sides.map(watch));
  // Read once every side showed it: a /stats scan costs an Envoy tens of ms, which must not load the machine while
  // another side's flip is still on its way. The check that update_time is not after the poll catches a later update.
  const out: FlipTimes[] = [];
  for (const [i, side] of o.sides.entries()) {
    const at = shown[i] as number;
    out.push({ shown: at, applied: await appliedAt(side, wall0, at) });
  }
  return out;
}

/** Slack for comparing Envoy's epoch clock with ours (both the host's clock, read at different resolutions). */
const CLOCK_SLACK_MS = 2;

/** ms after the write at which the side's Envoy applied the update its poll just showed (update_time + 1 ms); throws when that is not within [write, shown]. */
async function appliedAt(side: FlipSide, wall0: number, shown: number): Promise<number> {
  const found = [...(await stats(side.envoy, updateTimeFilter(side.statCluster))).values()];
  if (found.length !== 1) throw new Error(`${side.envoy.name}: ${found.length} update_time stats for cluster ${side.statCluster}`);
  const applied = (found[0] as number) + 1 - wall0;
  if (applied < -CLOCK_SLACK_MS || applied > shown + CLOCK_SLACK_MS) {
    throw new Error(
      `${side.envoy.name}: ${side.statCluster} update_time says applied ${applied.toFixed(1)} ms after the write, outside [0, ${shown.toFixed(1)}] (shown)`,
    );
  }
  return Math.max(0, applied);
}
