/**
 * The agent's own metrics (GET /metrics, docs/operations/monitoring.md), kept
 * by prom-client in a registry of their own. Two kinds:
 * - counted as they happen, through the record* methods the composition root
 *   hands to the parts (ADS events, snapshot builds, Consul blocking queries,
 *   SVID renewal failures, Envoy hot restarts);
 * - read at scrape time from the status document (SVID expiry, watch states,
 *   Envoy's crash restarts and state, capture state, policy revision), so
 *   they can never disagree with `mesh-agent status`.
 * Metric names are an API (dashboards): never rename one.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { Clock } from '../../lib/clock.js';
import type { WatchOutcome } from '../discovery/catalog-watch.js';
import type { EnvoyEventKind } from '../envoy/supervisor-state.js';
import type { AdsEvent } from '../xds/server/ads-telemetry.js';
import { CompactHistogram } from './compact-histogram.js';
import type { StatusDocument } from './status.js';

export interface AgentMetrics {
  readonly registry: Registry;
  /** An ADS push, ACK or NACK (other events are ignored). */
  recordXds(event: AdsEvent): void;
  /** One snapshot built (model, resources, checks), in milliseconds. */
  recordSnapshotBuild(ms: number): void;
  /** One Consul blocking query of a catalog watch ended. */
  recordWatchAnswer(service: string, ms: number, outcome: WatchOutcome): void;
  /** A renewal of a credential failed ('node' or a workload's SPIFFE ID). */
  recordRenewalFailure(credential: string): void;
  /** A supervisor event; 'hot-restarted' is counted. */
  recordEnvoyEvent(kind: EnvoyEventKind): void;
  /** Where scrape-time metrics read from: the agent's status, and the node's SPIFFE ID (status leaves it out). */
  setStatusSource(status: () => StatusDocument, nodeSpiffeId?: () => string | undefined): void;
  /** A fetch of Envoy's stats for the merged output failed. */
  recordEnvoyStatsFailure(): void;
  /** The exposition text of one scrape: the status document is built once for all the gauges that read it. */
  text(): Promise<string>;
}

export interface AgentMetricsOptions {
  clock: Clock;
  /** Node.js process metrics (mesh_agent_process_*, mesh_agent_nodejs_*); off in unit tests. */
  processMetrics?: boolean;
  version?: string;
  node?: string;
}

/** Seconds, from the first bucket a snapshot build of a small node takes to a slow one of thousands of clusters. */
const BUILD_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
/** Blocking queries return on a change or after consul.watchWait (default 60 s; Consul adds up to 1/16 jitter). */
const WATCH_BUCKETS = [0.005, 0.025, 0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600];

/** One SVID as the expiry gauge labels it. */
type SvidRow = { kind: 'node' | 'workload'; workload: string; spiffeId: string; notAfter: string | undefined };

export function createAgentMetrics(options: AgentMetricsOptions): AgentMetrics {
  const registry = new Registry();
  const registers = [registry];
  let status: (() => StatusDocument) | undefined;
  let nodeId: () => string | undefined = () => undefined;
  /** The status document of the scrape in progress (text()), shared by the gauges that read it. */
  let scraping: StatusDocument | undefined;
  const doc = (): StatusDocument | undefined => scraping ?? status?.();
  if (options.processMetrics === true) collectDefaultMetrics({ register: registry, prefix: 'mesh_agent_' });

  new Gauge({
    name: 'mesh_agent_info',
    help: 'Always 1; the labels name the agent version and node.',
    labelNames: ['version', 'node'],
    registers,
  }).set({ version: options.version ?? 'unknown', node: options.node ?? '' }, 1);

  const xdsLabels = ['type', 'api'] as const;
  const pushes = new Counter({
    name: 'mesh_agent_xds_pushes_total',
    help: 'xDS responses sent to Envoy.',
    labelNames: xdsLabels,
    registers,
  });
  const pushBytes = new Counter({
    name: 'mesh_agent_xds_push_bytes_total',
    help: 'Bytes of the xDS responses sent to Envoy.',
    labelNames: xdsLabels,
    registers,
  });
  const acks = new Counter({
    name: 'mesh_agent_xds_acks_total',
    help: 'xDS responses Envoy accepted (ACK).',
    labelNames: xdsLabels,
    registers,
  });
  const nacks = new Counter({
    name: 'mesh_agent_xds_nacks_total',
    help: 'xDS responses Envoy rejected (NACK); the detail is in mesh-agent status.',
    labelNames: xdsLabels,
    registers,
  });
  const build = new Histogram({
    name: 'mesh_agent_snapshot_build_seconds',
    help: 'Time to build one xDS snapshot (model, resources, consistency checks).',
    buckets: BUILD_BUCKETS,
    registers,
  });
  // One series per service and outcome: the compact form (compact-histogram.ts) keeps each in one array.
  const watchTime = new CompactHistogram({
    name: 'mesh_agent_consul_watch_duration_seconds',
    help: 'Duration of each Consul blocking query of a catalog watch (up to consul.watchWait when nothing changes).',
    labelNames: ['service', 'outcome'],
    buckets: WATCH_BUCKETS,
    registers,
  });
  const watchAnswered = new Gauge({
    name: 'mesh_agent_consul_watch_last_answer_timestamp_seconds',
    help: 'When Consul last answered a catalog watch (Unix time).',
    labelNames: ['service'],
    registers,
  });
  const renewalFailures = new Counter({
    name: 'mesh_agent_svid_rotation_failures_total',
    help: 'Failed SVID renewals (credential: node, or a workload SPIFFE ID).',
    labelNames: ['credential'],
    registers,
  });
  const hotRestarts = new Counter({
    name: 'mesh_agent_envoy_hot_restarts_total',
    help: 'Envoy hot restarts (a new binary or bootstrap; connections kept).',
    registers,
  });
  const statsFailures = new Counter({
    name: 'mesh_agent_envoy_stats_scrape_failures_total',
    help: "Scrapes of /metrics that could not include Envoy's stats (admin API not answering).",
    registers,
  });

  // Read at scrape time from the status document.
  new Gauge({
    name: 'mesh_agent_svid_expiry_seconds',
    help: 'Seconds until the SVID expires (negative: expired).',
    labelNames: ['kind', 'workload', 'spiffe_id'],
    registers,
    collect() {
      this.reset();
      const d = doc();
      if (d === undefined) return;
      const now = options.clock.now();
      for (const row of svidRows(d, nodeId() ?? '')) {
        if (row.notAfter === undefined) continue;
        this.set({ kind: row.kind, workload: row.workload, spiffe_id: row.spiffeId }, (Date.parse(row.notAfter) - now) / 1000);
      }
    },
  });
  new Gauge({
    name: 'mesh_agent_consul_watch_state',
    help: 'Catalog watch of an upstream service: 1 for its current state (ok, starting, failing).',
    labelNames: ['service', 'state'],
    registers,
    collect() {
      this.reset();
      const seen = new Set<string>();
      for (const u of doc()?.upstreams ?? []) {
        if (seen.has(u.service)) continue;
        seen.add(u.service);
        for (const state of ['ok', 'starting', 'failing']) this.set({ service: u.service, state }, u.watch === state ? 1 : 0);
      }
    },
  });
  new Counter({
    name: 'mesh_agent_envoy_restarts_total',
    help: 'Envoy restarts after it exited unexpectedly (crash restarts by the supervisor).',
    registers,
    collect() {
      const restarts = doc()?.envoy?.restarts;
      this.reset();
      if (typeof restarts === 'number') this.inc(restarts);
    },
  });
  new Gauge({
    name: 'mesh_agent_envoy_epoch',
    help: "The running Envoy's hot-restart epoch.",
    registers,
    collect() {
      const epoch = doc()?.envoy?.epoch;
      this.set(typeof epoch === 'number' ? epoch : 0);
    },
  });
  stateGauge('mesh_agent_envoy_state', 'Envoy under the supervisor: 1 for its current state.', registers, () => doc()?.envoy?.state, [
    'stopped',
    'starting',
    'running',
    'backoff',
    'draining',
    'hot-restarting',
    'external',
  ]);
  stateGauge(
    'mesh_agent_capture_state',
    'Transparent-proxy capture: 1 for its current state (absent when transparentProxy is off).',
    registers,
    () => doc()?.transparentProxy?.state,
    ['disabled', 'pending', 'installed', 'lifted', 'drift', 'failed', 'removed'],
  );
  new Gauge({
    name: 'mesh_agent_policy_revision',
    help: 'The mesh policy revision in force; origin: controlplane, disk or none.',
    labelNames: ['origin'],
    registers,
    collect() {
      this.reset();
      const p = doc()?.policy;
      if (p !== undefined) this.set({ origin: p.origin }, p.revision);
    },
  });
  new Gauge({
    name: 'mesh_agent_xds_streams',
    help: 'ADS streams open (Envoy connected).',
    registers,
    collect() {
      this.set(doc()?.xds?.streams.length ?? 0);
    },
  });
  new Gauge({
    name: 'mesh_agent_healthy',
    help: '1 when mesh-agent status has no problem, else 0.',
    registers,
    collect() {
      const d = doc();
      this.set(d?.healthy === false ? 0 : 1);
    },
  });

  return {
    registry,
    recordXds(event) {
      if (event.kind === 'push') {
        pushes.inc({ type: event.type, api: event.api });
        pushBytes.inc({ type: event.type, api: event.api }, event.bytes);
      } else if (event.kind === 'ack') acks.inc({ type: event.type, api: event.api });
      else if (event.kind === 'nack') nacks.inc({ type: event.nack.type, api: event.api });
    },
    recordSnapshotBuild: (ms) => build.observe(ms / 1000),
    recordWatchAnswer(service, ms, outcome) {
      watchTime.observe({ service, outcome }, ms / 1000);
      if (outcome !== 'error') watchAnswered.set({ service }, options.clock.now() / 1000);
    },
    recordRenewalFailure: (credential) => renewalFailures.inc({ credential }),
    recordEnvoyEvent(kind) {
      if (kind === 'hot-restarted') hotRestarts.inc();
    },
    setStatusSource(source, nodeSpiffeId) {
      status = source;
      if (nodeSpiffeId !== undefined) nodeId = nodeSpiffeId;
    },
    recordEnvoyStatsFailure: () => statsFailures.inc(),
    async text() {
      scraping = status?.();
      try {
        return await registry.metrics();
      } finally {
        scraping = undefined;
      }
    },
  };
}

/** A gauge with one series per known state, 1 for the current one (none when `current` is undefined). */
function stateGauge(name: string, help: string, registers: Registry[], current: () => string | undefined, states: string[]): void {
  new Gauge({
    name,
    help,
    labelNames: ['state'],
    registers,
    collect() {
      this.reset();
      const now = current();
      if (now === undefined) return;
      for (const state of states.includes(now) ? states : [...states, now]) this.set({ state }, state === now ? 1 : 0);
    },
  });
}

/** The node SVID and each workload's SVID that status shows. */
export function svidRows(d: StatusDocument, nodeSpiffeId: string): SvidRow[] {
  const rows: SvidRow[] = [];
  if (d.nodeSvid !== undefined) rows.push({ kind: 'node', workload: '', spiffeId: nodeSpiffeId, notAfter: d.nodeSvid.notAfter });
  for (const w of d.workloads)
    if (w.svid !== undefined) rows.push({ kind: 'workload', workload: w.name, spiffeId: w.spiffeId, notAfter: w.svid.notAfter });
  return rows;
}
