/**
 * The data plane of one node: workloads + CatalogView + SVIDs -> ProxyModel
 * -> snapshot -> snapshot cache (check, encode, per-node watches) -> ADS
 * server -> the supervised Envoy. Rebuilds are coalesced
 * (many inputs changing in one tick give one snapshot); a snapshot that fails
 * its checks is refused and Envoy keeps the previous one (status shows why).
 *
 * The parts arrive as small interfaces so each can be tested alone; the real
 * ones are wired in run-command.ts.
 */
import type { Clock } from '../../lib/clock.js';
import { toMeshError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import type { StoredPolicy } from '../../lib/policy/schema.js';
import { SideEffects } from '../../lib/side-effects.js';
import type { CatalogView } from '../discovery/catalog-view.js';
import { EMPTY_VIEW } from '../discovery/catalog-view.js';
import type { EnvoyStatus } from '../envoy/envoy-status.js';
import type { IdentitiesStatus } from '../identity/identity-status.js';
import { buildModel, type ModelProblem } from '../model/build-model.js';
import type { CaptureInput } from '../model/capture.js';
import { ModelMemo } from '../model/model-memo.js';
import type { ModelTracing, ProxyModel } from '../model/proxy-model.js';
import { type PolicySource, type PolicySourceStatus, staticPolicySource } from '../policy/policy-source.js';
import { captureReady } from '../tproxy/capture-readiness.js';
import type { Workload } from '../workloads/workload.js';
import { BuildMemo } from '../xds/build-memo.js';
import { createSnapshotCache, type SnapshotCache } from '../xds/cache/snapshot-cache.js';
import { type AdsServer, startAdsServer } from '../xds/server/ads-server.js';
import { type AdsEvent, type AdsStatus, idleAdsStatus } from '../xds/server/ads-telemetry.js';
import type { Identities } from '../xds/snapshot.js';
import { buildSnapshot } from '../xds/snapshot-build.js';
import { ChangeTimer, type ChangeTiming } from './change-timing.js';
import { PolicyLifecycle } from './policy-lifecycle.js';
import type { DataPlanePolicyStatus } from './policy-status.js';
import { type WorkloadServing, workloadServing } from './workload-serving.js';

/** Where SVIDs and the trust bundle come from (agent/identity/workload-identities.ts). */
export interface IdentitySource {
  start(): Promise<void>;
  setWanted(spiffeIds: readonly string[]): void;
  current(): Identities;
  onChange(listener: () => void): () => void;
  states(): IdentitiesStatus;
  /** Stops renewals and the bundle watch; settles once the disk writes already asked for are done. */
  stop(): Promise<void> | void;
}

/** The supervised Envoy (agent/envoy/supervisor.ts). */
export interface EnvoyRunner {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Hot restart when the bootstrap or the binary (path or file) changed. */
  reload(next: { bootstrap?: Record<string, unknown>; binary?: string }): Promise<'hot-restarted' | 'unchanged'>;
  status(): EnvoyStatus;
  /** Envoy started, exited, restarted or stopped. */
  onEvent?(listener: () => void): () => void;
}

export interface DataPlaneOptions {
  nodeName: string;
  trustDomain: string;
  adsSocket: string;
  adsSocketGid?: number;
  clock: Clock;
  log: Logger;
  identities: IdentitySource;
  /** Absent in tests that run Envoy themselves. */
  envoy?: EnvoyRunner;
  /** Between the data plane and the ADS server; default: a new one. */
  cache?: SnapshotCache;
  /** Mesh policy (routes, authorization, secure naming...); default: none. */
  policy?: PolicySource;
  /** This node's zone (agent config `zone`), for locality-aware load balancing. */
  zone?: string;
  /** The access log file (workloads with accessLog or server-side policy); default: Envoy's stdout. */
  accessLogPath?: string;
  /** Agent config accessLog.enabled: the default of workloads whose file says nothing. */
  accessLogDefault?: boolean;
  /** Distributed tracing (agent config `tracing`); absent: a MeshTelemetry policy's, or off. */
  tracing?: ModelTracing;
  /** Transparent proxy: the capture listeners (agent config transparentProxy); absent: capture off. */
  capture?: CaptureInput;
  /** Metrics (agent/status/agent-metrics.ts): ADS pushes, ACKs, NACKs and snapshot build times. */
  metrics?: DataPlaneMetrics;
}

/** What the data plane reports to metrics. */
export interface DataPlaneMetrics {
  recordXds(event: AdsEvent): void;
  /** Milliseconds one rebuild took (model, resources, checks). */
  recordSnapshotBuild(ms: number): void;
}

export interface UpstreamStatus {
  readonly service: string;
  readonly localPort: number;
  readonly caller: string;
  readonly protocol: string;
  /** Endpoints Envoy gets for it. */
  readonly endpoints: number;
  /** Catalog instances left out: without a SPIFFE ID (outside the mesh), or claiming one that may not serve the service (secure naming). */
  readonly skipped: number;
}

export interface DataPlaneStatus {
  readonly envoy: { state: string; [key: string]: unknown };
  readonly xds: AdsStatus & {
    readonly snapshotVersion?: string;
    readonly lastError?: string;
    readonly builtAt?: number;
    /** How long the latest catalog view took to reach Envoy (./change-timing.ts). */
    readonly lastChange?: ChangeTiming;
  };
  readonly identity: IdentitiesStatus;
  readonly modelProblems: readonly ModelProblem[];
  readonly upstreams: readonly UpstreamStatus[];
  /** Per workload: whether Envoy serves its mesh listener, and why not. */
  readonly serving: ReadonlyArray<WorkloadServing & { readonly workload: string }>;
  /** Per policy resource the node holds: applied, or why not (agent/dataplane/policy-status.ts). Always set by the data plane; optional for hand-made statuses. */
  readonly policy?: DataPlanePolicyStatus;
  /** The policy stream: the revision received, where it came from, whether the watch is open. */
  readonly policySource?: PolicySourceStatus;
  /** Workloads whose mesh port also accepts plaintext (PeerAuthentication permissive), with the resource that says so. */
  readonly plaintextAccepted?: ReadonlyArray<{ readonly workload: string; readonly policy: string }>;
  /** The tracing in force and where it comes from (`agent.yaml` or `MeshTelemetry/<name>`); absent: off. */
  readonly tracing?: TracingStatus;
}

export interface TracingStatus {
  readonly provider: string;
  readonly address: string;
  readonly samplingPercent: number;
  readonly source: string;
}

function tracingStatus(built: ReturnType<typeof buildModel> | undefined): Pick<DataPlaneStatus, 'tracing'> {
  const tracing = built?.model.tracing;
  if (tracing === undefined) return {};
  return {
    tracing: {
      provider: tracing.provider,
      address: `${tracing.host}:${tracing.port}`,
      samplingPercent: tracing.samplingPercent,
      source: built?.tracingSource ?? 'agent.yaml',
    },
  };
}

export interface DataPlane {
  start(): Promise<void>;
  /** New workloads or catalog view: schedules a rebuild. */
  update(input: { workloads?: readonly Workload[]; view?: CatalogView }): void;
  /**
   * Applies a new Envoy bootstrap or binary with a hot restart (established
   * connections stay); also notices a binary replaced in place. Never throws:
   * a failed reload leaves the running Envoy and is logged.
   */
  reloadEnvoy(next?: { bootstrap?: Record<string, unknown>; binary?: string }): Promise<'hot-restarted' | 'unchanged' | 'failed'>;
  /** Resolves once pending rebuilds ran. */
  settled(): Promise<void>;
  status(): DataPlaneStatus;
  /** status().xds alone, without building the rest (GET /status/xds). */
  xdsStatus(): DataPlaneStatus['xds'];
  /** Per workload name: whether Envoy really serves its mesh listener, and why not. */
  serving(): ReadonlyMap<string, WorkloadServing>;
  /** Called when serving() changes (Envoy events, acknowledgements, rebuilds). */
  onServingChange(listener: () => void): () => void;
  /** The policy resources the latest build used: the received ones, with NACK rollbacks applied. */
  policyInForce(): readonly StoredPolicy[];
  /** Services the model needs from the catalog beyond the workloads' upstreams: mirror targets of TrafficRoutes, captured services. */
  extraServices?(): readonly string[];
  /** Called when extraServices() changes (after a rebuild). */
  onExtraServices?(listener: () => void): () => void;
  /** Whether Envoy can take captured traffic now (agent/tproxy/capture-readiness.ts). */
  captureReady?(): boolean;
  /** Called when Envoy's state or what it accepted may have changed (Envoy events, ACKs, NACKs, rebuilds). */
  onEnvoyChange?(listener: () => void): () => void;
  /** The model of the latest build (what Envoy's resources were built from); undefined before the first. */
  model?(): ProxyModel | undefined;
  /** The node's snapshots (keyed by nodeName, Envoy's node id) and what Envoy acknowledged. */
  readonly cache: SnapshotCache;
  readonly ads: AdsServer | undefined;
  stop(): Promise<void>;
}

/** Each upstream of a built model as status shows it (one per caller; mirror-only and capture-only clusters are not listed). */
function upstreamStatuses(built: ReturnType<typeof buildModel> | undefined): UpstreamStatus[] {
  return (built?.model.upstreams ?? [])
    .filter((u) => u.mirrorOnly !== true && u.captureOnly !== true)
    .map((u) => ({
      service: u.service,
      localPort: u.localPort,
      caller: u.workload,
      protocol: u.protocol,
      endpoints: u.instances.length,
      skipped: built?.skippedInstances[u.service] ?? 0,
    }));
}

/** The workloads of a built model whose mesh port accepts plaintext (status shows them). */
function plaintextAccepted(built: ReturnType<typeof buildModel> | undefined): Pick<DataPlaneStatus, 'plaintextAccepted'> {
  const open = (built?.model.workloads ?? []).flatMap((w) =>
    w.inbound?.mtls === undefined ? [] : [{ workload: w.name, policy: w.inbound.mtls.name }],
  );
  return open.length === 0 ? {} : { plaintextAccepted: open };
}

export function createDataPlane(options: DataPlaneOptions): DataPlane {
  const { log, identities } = options;
  const cache = options.cache ?? createSnapshotCache();
  let ads: AdsServer | undefined;
  let workloads: readonly Workload[] = [];
  let view: CatalogView = EMPTY_VIEW;
  let scheduled: Promise<void> | undefined;
  let lastError: string | undefined;
  let builtAt: number | undefined;
  let problems: readonly ModelProblem[] = [];
  /** The last model built; status() describes its upstreams. */
  let lastBuilt: ReturnType<typeof buildModel> | undefined;
  let stopped = false;
  let unsubscribe: (() => void) | undefined;
  const memo = new BuildMemo();
  /** Upstreams of services whose catalog view did not change are reused, and so are their resources (memo). */
  const modelMemo = new ModelMemo();
  const changes = new ChangeTimer(options.clock);
  const policy = options.policy ?? staticPolicySource();
  /** Received policy minus NACK rollbacks; parses each resource once per version. */
  const policyLife = new PolicyLifecycle(policy, log.child({ component: 'policy' }));
  const policyInterest = () => ({
    // Mirror targets too: their TrafficPolicy shapes the mirror clusters.
    services: [
      ...new Set([...workloads.map((w) => w.name), ...workloads.flatMap((w) => w.upstreams.map((u) => u.service)), ...extraServices]),
    ].sort(),
    spiffeIds: wantedIds().sort(),
  });
  const effects = new SideEffects(log.child({ component: 'lifecycle' }));

  const wantedIds = () => [...new Set(workloads.map((w) => w.spiffeId))];
  const servingListeners = new Set<() => void>();
  const envoyListeners = new Set<() => void>();
  let extraServices: readonly string[] = [];
  const extraListeners = new Set<() => void>();
  /** The serving state, recomputed at most once per tick after something it depends on changed. */
  let servingNow: Map<string, WorkloadServing> | undefined;
  let servingRecheck: NodeJS.Immediate | undefined;
  let lastServing = '';

  const computeServing = (): Map<string, WorkloadServing> => {
    const served = cache.current(options.nodeName);
    const envoy = options.envoy?.status();
    const rejected = new Map<string, string>();
    for (const t of ads?.types() ?? []) {
      if (t.lastNack !== undefined && (t.ackedAt === undefined || t.lastNack.at >= t.ackedAt)) rejected.set(t.type, t.lastNack.detail);
    }
    const svidErrors = new Map<string, string>();
    for (const w of identities.states().workloads)
      if (w.state === 'failing' && w.lastError !== undefined) svidErrors.set(w.spiffeId, w.lastError);
    return workloadServing({
      workloads,
      problems,
      ...(envoy === undefined ? {} : { envoy }),
      servedListeners: served?.snapshot.resources.listeners,
      acked: cache.acked(options.nodeName),
      ...(lastError === undefined ? {} : { snapshotError: lastError }),
      rejected,
      svidErrors,
    });
  };

  const serving = (): Map<string, WorkloadServing> => {
    servingNow ??= computeServing();
    return servingNow;
  };

  /** Something the serving state depends on changed: recompute once this tick is over, and tell the listeners if it differs. */
  const servingMayHaveChanged = () => {
    servingNow = undefined;
    for (const listener of envoyListeners) {
      try {
        listener();
      } catch (err) {
        log.error('an Envoy-change listener failed', { error: err });
      }
    }
    if (servingListeners.size === 0 || stopped || servingRecheck !== undefined) return;
    servingRecheck = setImmediate(() => {
      servingRecheck = undefined;
      if (stopped) return;
      const now = JSON.stringify([...serving()]);
      if (now === lastServing) return;
      lastServing = now;
      for (const listener of servingListeners) {
        try {
          listener();
        } catch (err) {
          log.error('a serving-state listener failed', { error: err });
        }
      }
    });
  };
  /** ADS events that change what Envoy accepted (not pushes); a NACK of this node may roll policy back. */
  const onAdsEvent = (event: AdsEvent) => {
    if (event.kind === 'push') {
      changes.pushed();
      return;
    }
    const ownAck = event.kind === 'ack' && event.node === options.nodeName;
    if (ownAck) changes.acked();
    servingMayHaveChanged();
    if (ownAck) policyLife.acknowledged(cache.current(options.nodeName)?.snapshot, cache.acked(options.nodeName));
    if (event.kind === 'nack' && event.nack.node === options.nodeName && policyLife.nacked(event.nack.detail, event.nack.at)) schedule();
  };

  const rebuild = () => {
    if (ads === undefined || stopped) return;
    const started = performance.now();
    try {
      build();
    } finally {
      options.metrics?.recordSnapshotBuild(performance.now() - started);
    }
  };

  const build = () => {
    changes.buildStarted();
    const ids = identities.current();
    const built = buildModel({
      nodeName: options.nodeName,
      trustDomain: options.trustDomain,
      workloads,
      view,
      svids: new Set(ids.certs.keys()),
      policies: policyLife.build(),
      ...(options.zone === undefined ? {} : { zone: options.zone }),
      ...(options.accessLogPath === undefined ? {} : { accessLogPath: options.accessLogPath }),
      ...(options.accessLogDefault === true ? { accessLogDefault: true } : {}),
      ...(options.tracing === undefined ? {} : { tracing: options.tracing }),
      ...(options.capture === undefined ? {} : { capture: options.capture }),
      memo: modelMemo,
    });
    const before = JSON.stringify(problems);
    problems = built.problems;
    if (JSON.stringify(problems) !== before && problems.length > 0) log.warn('some workloads are not in the data plane yet', { problems });
    lastBuilt = built;
    // Mirror targets and captured services: watched in the catalog and named in the policy interest.
    const extra = [
      ...new Set(built.model.upstreams.filter((u) => u.mirrorOnly === true || u.captureOnly === true).map((u) => u.service)),
    ].sort();
    if (extra.join(',') !== extraServices.join(',')) {
      extraServices = extra;
      policy.setInterest(policyInterest());
      for (const l of extraListeners) l();
    }
    const snapshot = buildSnapshot(built.model, ids, memo);
    try {
      const changed = cache.setSnapshot(options.nodeName, snapshot);
      changes.built(changed);
      const served = cache.current(options.nodeName);
      if (served !== undefined) {
        policyLife.servedAs(served.version);
        // Content Envoy already runs (a rollback to it) brings no new ACK: check now.
        policyLife.acknowledged(served.snapshot, cache.acked(options.nodeName));
      }
      if (changed) {
        builtAt = options.clock.now();
        log.info('xds snapshot served', {
          version: snapshot.version.slice(0, 12),
          listeners: snapshot.resources.listeners.size,
          clusters: snapshot.resources.clusters.size,
          secrets: snapshot.resources.secrets.size,
        });
      }
      lastError = undefined;
    } catch (err) {
      changes.built(false);
      const message = toMeshError(err).message;
      if (message !== lastError)
        log.error('snapshot refused; Envoy keeps the previous configuration', { code: 'MESH_E_XDS_SNAPSHOT_INVALID', error: message });
      lastError = message;
      policyLife.refused(message);
    }
  };

  const schedule = () => {
    scheduled ??= new Promise<void>((resolve) =>
      setImmediate(() => {
        scheduled = undefined;
        try {
          rebuild();
        } finally {
          servingMayHaveChanged();
          resolve();
        }
      }),
    );
  };

  const xdsStatus = (): DataPlaneStatus['xds'] => {
    const snapshotVersion = cache.current(options.nodeName)?.version;
    const lastChange = changes.status();
    return {
      ...(ads?.status() ?? idleAdsStatus(options.adsSocket)),
      ...(snapshotVersion === undefined ? {} : { snapshotVersion }),
      ...(lastError === undefined ? {} : { lastError }),
      ...(builtAt === undefined ? {} : { builtAt }),
      ...(lastChange === undefined ? {} : { lastChange }),
    };
  };

  return {
    cache,
    get ads() {
      return ads;
    },
    async start() {
      // Each effect is recorded before it is made; stop() unwinds them newest first,
      // whatever start() had reached (Envoy drained and stopped, identities, the socket).
      const server = await effects.effect(
        'ADS socket',
        () =>
          startAdsServer({
            socketPath: options.adsSocket,
            log: log.child({ component: 'xds' }),
            clock: options.clock,
            cache,
            ...(options.adsSocketGid === undefined ? {} : { socketGid: options.adsSocketGid }),
          }),
        (s) => s.close(),
      );
      ads = server;
      effects.record('ADS events', server.onEvent(onAdsEvent));
      const metrics = options.metrics;
      if (metrics !== undefined)
        effects.record(
          'ADS metrics',
          server.onEvent((event) => metrics.recordXds(event)),
        );
      effects.record('identities', async () => {
        unsubscribe?.();
        await identities.stop();
      });
      unsubscribe = identities.onChange(schedule);
      effects.record('policy', async () => {
        offPolicy();
        await policy.stop();
      });
      const offPolicy = policy.onChange(schedule);
      policy.setInterest(policyInterest());
      await policy.start();
      effects.check('the identities');
      await identities.start();
      effects.check('the first snapshot');
      identities.setWanted(wantedIds());
      schedule();
      await scheduled;
      const envoy = options.envoy;
      if (envoy === undefined) return;
      const offEnvoy = envoy.onEvent?.(servingMayHaveChanged);
      effects.record('Envoy', async () => {
        await envoy.stop();
        offEnvoy?.();
      });
      await envoy.start();
    },
    serving,
    captureReady: () =>
      captureReady({
        envoyState: options.envoy?.status().state ?? 'running',
        servedListeners: cache.current(options.nodeName)?.snapshot.resources.listeners.keys(),
        ackedListeners: cache.acked(options.nodeName).listeners,
      }),
    onEnvoyChange(listener) {
      envoyListeners.add(listener);
      return () => {
        envoyListeners.delete(listener);
      };
    },
    policyInForce: () => policyLife.inForce(),
    model: () => lastBuilt?.model,
    extraServices: () => extraServices,
    onExtraServices(listener) {
      extraListeners.add(listener);
      return () => {
        extraListeners.delete(listener);
      };
    },
    onServingChange(listener) {
      servingListeners.add(listener);
      return () => {
        servingListeners.delete(listener);
      };
    },
    update(input) {
      if (input.workloads !== undefined) {
        workloads = input.workloads;
        if (ads !== undefined) identities.setWanted(wantedIds());
        policy.setInterest(policyInterest());
      }
      if (input.view !== undefined && input.view !== view) {
        changes.viewArrived(input.view.version);
        view = input.view;
      }
      schedule();
    },
    async reloadEnvoy(next = {}) {
      if (options.envoy === undefined || stopped) return 'unchanged';
      try {
        const result = await options.envoy.reload(next);
        log.info(
          result === 'hot-restarted' ? 'Envoy hot-restarted with the new binary or bootstrap' : 'Envoy binary and bootstrap unchanged',
          {},
        );
        return result;
      } catch (err) {
        log.error('Envoy reload failed; the running Envoy keeps serving', { code: 'MESH_E_ENVOY_RELOAD', error: err });
        return 'failed';
      }
    },
    async settled() {
      while (scheduled !== undefined) await scheduled;
    },
    xdsStatus,
    status() {
      return {
        envoy: options.envoy?.status() ?? { state: 'external' },
        xds: xdsStatus(),
        identity: identities.states(),
        modelProblems: problems,
        upstreams: upstreamStatuses(lastBuilt),
        serving: [...serving()].map(([workload, state]) => ({ workload, ...state })),
        policy: policyLife.status(workloads, view, options.tracing !== undefined),
        policySource: policy.status?.() ?? { revision: policy.current().revision, origin: policy.origin(), connected: false },
        ...plaintextAccepted(lastBuilt),
        ...tracingStatus(lastBuilt),
      };
    },
    async stop() {
      stopped = true;
      await effects.unwind();
    },
  };
}
