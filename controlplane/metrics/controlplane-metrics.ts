/**
 * The control plane's metrics (GET /metrics on `metrics.listen`, off by
 * default; docs/operations/monitoring.md), kept by prom-client: SVIDs issued,
 * calls refused by error code, join attempts, the time of each call, the time
 * of each database commit and WAL sync, and the streams agents hold open.
 * Metric names are an API (dashboards): never rename one.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/** Calls that issue an SVID, and which kind. */
const ISSUING: Readonly<Record<string, 'node' | 'workload'>> = {
  Join: 'node',
  RenewNode: 'node',
  AttestKubernetes: 'node',
  SignWorkload: 'workload',
};

export type StreamKind = 'policy' | 'bundle';

export interface ControlPlaneMetrics {
  readonly registry: Registry;
  /** One unary call answered: `code` is undefined on success, else the error code it was refused with. */
  recordCall(method: string, ms: number, code?: string): void;
  /** One group commit (the SQLite transaction) or WAL sync, in milliseconds. */
  recordCommit(phase: 'transaction' | 'sync', ms: number): void;
  /** A stream refused before it opened (Policy.Watch of an unknown node...). */
  recordDenial(method: string, code: string): void;
  streamOpened(kind: StreamKind): void;
  streamClosed(kind: StreamKind): void;
  /** Where the number of open policy streams is read at scrape time (the fan-out's count). */
  setPolicyStreams(count: () => number): void;
}

const CALL_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
const COMMIT_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25];

export function createControlPlaneMetrics(options: { processMetrics?: boolean; version?: string } = {}): ControlPlaneMetrics {
  const registry = new Registry();
  const registers = [registry];
  if (options.processMetrics === true) collectDefaultMetrics({ register: registry, prefix: 'mesh_controlplane_' });
  new Gauge({ name: 'mesh_controlplane_info', help: 'Always 1; the label names the version.', labelNames: ['version'], registers }).set(
    { version: options.version ?? 'unknown' },
    1,
  );
  const issued = new Counter({
    name: 'mesh_controlplane_svids_issued_total',
    help: 'SVIDs signed (node: joins, node renewals and Kubernetes pod attestations; workload: workload SVIDs).',
    labelNames: ['kind'],
    registers,
  });
  const denials = new Counter({
    name: 'mesh_controlplane_denials_total',
    help: 'Calls refused, by method and error code (MESH_E_*).',
    labelNames: ['method', 'code'],
    registers,
  });
  const joins = new Counter({
    name: 'mesh_controlplane_join_attempts_total',
    help: 'Joins with a token; result: ok or the error code.',
    labelNames: ['result'],
    registers,
  });
  const calls = new Histogram({
    name: 'mesh_controlplane_request_duration_seconds',
    help: 'Time to answer a call; result: ok or the error code.',
    labelNames: ['method', 'result'],
    buckets: CALL_BUCKETS,
    registers,
  });
  const commits = new Histogram({
    name: 'mesh_controlplane_db_commit_seconds',
    help: 'SQLite group commits: the transaction (phase transaction) and the WAL sync that makes it durable (phase sync).',
    labelNames: ['phase'],
    buckets: COMMIT_BUCKETS,
    registers,
  });
  let policyStreams: () => number = () => 0;
  const streams = new Gauge({
    name: 'mesh_controlplane_streams',
    help: 'Streams agents hold open (policy: Policy.Watch; bundle: Identity.WatchBundle).',
    labelNames: ['stream'],
    registers,
    collect() {
      this.set({ stream: 'policy' }, policyStreams());
    },
  });
  streams.set({ stream: 'bundle' }, 0);
  joins.inc({ result: 'ok' }, 0);

  return {
    registry,
    recordCall(method, ms, code) {
      const result = code ?? 'ok';
      calls.observe({ method, result }, ms / 1000);
      if (code !== undefined && code !== 'MESH_E_INTERNAL') denials.inc({ method, code });
      if (method === 'Join') joins.inc({ result });
      const kind = ISSUING[method];
      if (kind !== undefined && code === undefined) issued.inc({ kind });
    },
    recordCommit: (phase, ms) => commits.observe({ phase }, ms / 1000),
    recordDenial: (method, code) => denials.inc({ method, code }),
    setPolicyStreams(count) {
      policyStreams = count;
    },
    streamOpened: (kind) => streams.inc({ stream: kind }),
    streamClosed: (kind) => streams.dec({ stream: kind }),
  };
}
