/**
 * The running agent: workload files -> registrations (registrar) and
 * upstreams (catalog watcher) -> CatalogView, plus the status endpoint. All
 * external systems arrive as dependencies; run-command.ts wires the real ones.
 */
import type { Clock, TimerHandle } from '../../lib/clock.js';
import type { Logger } from '../../lib/logger.js';
import { SideEffects } from '../../lib/side-effects.js';
import { packageVersion } from '../../lib/version.js';
import type { AgentConfig } from '../config/schema.js';
import type { DataPlane } from '../dataplane/data-plane.js';
import type { CatalogView } from '../discovery/catalog-view.js';
import { type CatalogWatcher, createCatalogWatcher } from '../discovery/catalog-watch.js';
import type { ConsulClient } from '../discovery/consul-client.js';
import { type MeshServicesWatch, watchMeshServices } from '../discovery/mesh-services-watch.js';
import { createRegistrar, type Registrar } from '../discovery/registrar.js';
import { toRegistration } from '../discovery/registration.js';
import { createViewStore } from '../discovery/view-store.js';
import type { ControlPlaneLink } from '../identity/cp-connection.js';
import type { AgentMetrics } from '../status/agent-metrics.js';
import { EMPTY_LABEL_INDEX, type LabelIndex, labelIndex } from '../status/envoy-labels.js';
import { metricsEndpoint } from '../status/metrics-endpoint.js';
import { buildStatus, type StatusDocument, xdsSection } from '../status/status.js';
import { type StatusServer, startStatusServer } from '../status/status-server.js';
import { syncReport } from '../status/sync-report.js';
import { createSyncReporter } from '../status/sync-reporter.js';
import { typeSync } from '../status/type-sync.js';
import type { CaptureManager } from '../tproxy/capture-manager.js';
import { watchDir } from '../workloads/dir-watcher.js';
import { type CheckRunner, createHealthMonitor, type HealthMonitor } from '../workloads/health-monitor.js';
import { type LoadedWorkloads, loadWorkloads } from '../workloads/load.js';
import { upstreamServices } from '../workloads/workload.js';
import type { ConfigFileStatus } from './config-reload.js';

export interface AgentDeps {
  config: AgentConfig;
  consul: ConsulClient;
  clock: Clock;
  log: Logger;
  /** The address other hosts reach this host's workloads at. */
  address: string;
  /** The IPv6 address other hosts reach them at (advertiseAddress6 or the host's); absent: none is advertised. */
  address6?: string;
  /** Runs a check (catalog mode only). */
  checkRunner: CheckRunner;
  /** Watch workloadsDir for changes (off in some unit tests). */
  watchFiles?: boolean;
  /** Envoy, SVIDs and xDS (absent when dataPlane.enabled is false). */
  dataPlane?: DataPlane;
  /** Traffic capture (present when transparentProxy.enabled): rules installed once Envoy is ready, removed on stop. */
  capture?: CaptureManager;
  /** The configuration file's state (loaded, or its latest reload rejected), for status. */
  configStatus?: () => ConfigFileStatus;
  /** GET /metrics on the status listener (agent/status/agent-metrics.ts); absent: no /metrics. */
  metrics?: AgentMetrics;
  /** The control-plane connection the node's status reports go over (NodeStatus.Report); absent: no reports. */
  statusLink?: ControlPlaneLink;
}

export interface Agent {
  start(): Promise<void>;
  /** Re-reads the workload files (SIGHUP, directory change). */
  reload(): Promise<void>;
  status(): StatusDocument;
  /** The status document's xds section alone (GET /status/xds); undefined without a data plane. */
  xdsStatus(): StatusDocument['xds'];
  view(): CatalogView;
  onView(listener: (view: CatalogView) => void): () => void;
  readonly statusAddress: string | undefined;
  /**
   * Undoes what start() made so far, newest first: the workloads directory
   * watch, the Consul registrations, the data plane (Envoy drained and
   * stopped, the ADS socket removed), the status listener, the catalog
   * watches. Safe at any moment, also while start() is still running (start()
   * then ends with MESH_E_STOPPING). Idempotent.
   */
  stop(): Promise<void>;
  readonly dataPlane: DataPlane | undefined;
}

export function createAgent(deps: AgentDeps): Agent {
  const { config, clock, log } = deps;
  const backoff = { initialMs: config.consul.retryInitial, maxMs: config.consul.retryMax };
  const store = createViewStore(config.dataDir, log.child({ component: 'view-store' }));
  const regCtx = {
    nodeName: config.nodeName,
    address: deps.address,
    ...(deps.address6 === undefined ? {} : { address6: deps.address6 }),
    zone: config.zone,
  };
  const registrar: Registrar = createRegistrar({
    client: deps.consul,
    clock,
    log: log.child({ component: 'registrar' }),
    backoff,
    syncIntervalMs: config.consul.syncInterval,
  });
  let watcher: CatalogWatcher | undefined;
  /** Transparent proxy with outbound capture: every mesh service of the catalog is watched. */
  let meshServices: MeshServicesWatch | undefined;
  const capturesOutbound = config.transparentProxy.enabled && config.transparentProxy.outbound.enabled && deps.dataPlane !== undefined;
  let monitor: HealthMonitor | undefined;
  let server: StatusServer | undefined;
  let loaded: LoadedWorkloads = { workloads: [], errors: [] };
  let reloading: Promise<void> = Promise.resolve();
  let saving: Promise<void> = Promise.resolve();
  const effects = new SideEffects(log.child({ component: 'lifecycle' }));
  /** In Kubernetes mode the catalog sync registers the pods (kubernetes.register: false): this agent registers nothing. */
  const registers = config.kubernetes === undefined || config.kubernetes.register;
  const wlog = log.child({ component: 'workloads' });

  /**
   * The registrations Consul should hold. With the data plane on, each carries
   * the mesh listener check: passing only while Envoy really serves the
   * workload's mesh port, else critical with the reason (no SVID yet, Envoy
   * down, configuration refused), so callers are never sent to it.
   */
  const pushRegistrations = () => {
    if (!registers) return;
    const results = monitor?.results();
    const serving = deps.dataPlane?.serving();
    registrar.setDesired(
      loaded.workloads.map((w) => {
        const state = serving?.get(w.name);
        const mesh =
          serving === undefined
            ? undefined
            : {
                status: state?.serving === true ? ('passing' as const) : ('critical' as const),
                output: state?.reason ?? 'not in the data plane yet',
              };
        return toRegistration(w, regCtx, results?.get(w.name), mesh);
      }),
    );
  };

  const doReload = async () => {
    const next = await loadWorkloads(config.workloadsDir, {
      trustDomain: config.trustDomain,
      inboundPortOffset: config.mesh.inboundPortOffset,
    });
    if (effects.stopping) return;
    const before = new Set(loaded.errors.map((e) => JSON.stringify(e)));
    for (const e of next.errors) {
      if (!before.has(JSON.stringify(e))) wlog.error('workload file invalid', { code: 'MESH_E_WORKLOAD_INVALID', ...e });
    }
    const names = (l: LoadedWorkloads) => l.workloads.map((w) => w.name).join(',');
    if (names(next) !== names(loaded))
      wlog.info('workloads loaded', { workloads: next.workloads.map((w) => w.name), invalid: next.errors.length });
    loaded = next;
    monitor?.set(loaded.workloads);
    deps.dataPlane?.update({ workloads: loaded.workloads });
    deps.capture?.setWorkloads(loaded.workloads);
    pushRegistrations();
    watcher?.setServices(watchedServices());
  };
  /** The workloads' upstreams, what the data plane's model also needs (mirror targets), and with capture every mesh service. */
  const watchedServices = () =>
    [
      ...new Set([...upstreamServices(loaded.workloads), ...(deps.dataPlane?.extraServices?.() ?? []), ...(meshServices?.names() ?? [])]),
    ].sort();

  /** GET /metrics: the agent's registry and Envoy's stats labelled from the model Envoy runs. */
  const metricsRoute = () => {
    const metrics = deps.metrics;
    if (metrics === undefined) return {};
    metrics.setStatusSource(
      () => agent.status(),
      () => deps.dataPlane?.status().identity.node.spiffeId,
    );
    let labels: { model: unknown; index: LabelIndex } | undefined;
    const index = () => {
      const model = deps.dataPlane?.model?.();
      if (model === undefined) return EMPTY_LABEL_INDEX;
      if (labels?.model !== model) labels = { model, index: labelIndex(model) };
      return labels.index;
    };
    const envoyAdmin = () => {
      const address = deps.dataPlane?.status().envoy.adminAddress;
      return typeof address === 'string' ? address : undefined;
    };
    return { metrics: metricsEndpoint({ metrics, envoyAdmin, labels: index, log: log.child({ component: 'metrics' }) }) };
  };

  /** The status document; 'failing' leaves out the upstream rows of healthy watches (the sync report reads none). */
  const statusDocument = (upstreamRows: 'all' | 'failing'): StatusDocument =>
    buildStatus({
      node: config.nodeName,
      consulMode: config.consul.mode,
      consulAddress: config.consul.address,
      connection: registrar.connection(),
      workloads: loaded.workloads,
      fileErrors: loaded.errors,
      registrations: registers
        ? registrar.states()
        : loaded.workloads.map((w) => ({ id: w.name, name: w.name, state: 'by-sync' as const })),
      ...(monitor === undefined ? {} : { checks: monitor.results() }),
      view: watcher?.view() ?? { version: 0, services: {} },
      watches: watcher?.watches() ?? [],
      ...(deps.dataPlane === undefined ? {} : { dataPlane: deps.dataPlane.status() }),
      ...(deps.capture === undefined ? {} : { capture: deps.capture.status() }),
      ...(deps.configStatus === undefined ? {} : { config: deps.configStatus() }),
      process: processFacts(),
      now: clock.now(),
      upstreamRows,
    });

  const agent: Agent = {
    dataPlane: deps.dataPlane,
    get statusAddress() {
      return server?.address;
    },
    async start() {
      // Every side effect is recorded in the journal before it is made, in the
      // reverse of the order stop must undo them: a stop at any moment unwinds
      // exactly what exists (see side-effects.ts).
      const initial = await store.load();
      effects.check('the catalog watch');
      watcher = createCatalogWatcher({
        client: deps.consul,
        clock,
        log: log.child({ component: 'catalog-watch' }),
        backoff,
        waitMs: config.consul.watchWait,
        coalesceMs: config.consul.coalesceWindow,
        initial,
        ...(deps.metrics === undefined ? {} : { onAnswer: deps.metrics.recordWatchAnswer }),
      });
      const active = watcher;
      const offExtra = deps.dataPlane?.onExtraServices?.(() => active.setServices(watchedServices()));
      // The last known catalog is saved at most once per SAVE_EVERY_MS, the newest view: its JSON (700 KB at
      // 200 upstreams x 10) is too much work and garbage to make on every health flip.
      let unsaved: CatalogView | undefined;
      let saveTimer: TimerHandle | undefined;
      const saveNow = () => {
        saveTimer = undefined;
        const view = unsaved;
        unsaved = undefined;
        if (view === undefined) return;
        saving = saving
          .then(() => store.save(view, clock.now()))
          .catch((err: unknown) => log.warn('cannot save the last known catalog', { error: err }));
      };
      effects.record('catalog watches', async () => {
        // The view is final before our own deregistrations could reach it (and the persisted copy).
        offExtra?.();
        active.stop();
        saveTimer?.cancel();
        saveNow();
        await saving;
      });
      if (capturesOutbound) {
        effects.check('the mesh service list watch');
        meshServices = watchMeshServices({
          client: deps.consul,
          clock,
          log: log.child({ component: 'mesh-services' }),
          backoff,
          waitMs: config.consul.watchWait,
          // Until Consul answers: the mesh services of the last known view.
          initial: initial.filter((s) => s.instances.some((i) => i.spiffeId !== '')).map((s) => s.name),
          onChange: () => active.setServices(watchedServices()),
        });
        const list = meshServices;
        effects.record('mesh service list watch', () => list.stop());
        active.setServices(watchedServices());
      }
      deps.dataPlane?.update({ view: watcher.view() });
      watcher.onView((view) => {
        deps.dataPlane?.update({ view });
        if (effects.stopping) return;
        unsaved = view;
        saveTimer ??= clock.setTimer(SAVE_EVERY_MS, saveNow);
      });
      server = await effects.effect(
        'status listener',
        () => startStatusServer(config.status.listen, () => agent.status(), { ...metricsRoute(), xds: () => ({ xds: agent.xdsStatus() }) }),
        (s) => s.close(),
      );
      // Recorded before the registrations so that stop deregisters first (peers stop
      // picking this node), then drains Envoy.
      const dataPlane = deps.dataPlane;
      if (dataPlane !== undefined) effects.record('data plane (ADS socket, Envoy)', () => dataPlane.stop());
      // Capture records its removal (and the DNS proxy's stop) here: undone after the
      // deregistrations and before Envoy stops. It installs once Envoy is ready.
      effects.check('traffic capture');
      await deps.capture?.start(effects);
      const unsubscribe = dataPlane?.onServingChange(pushRegistrations);
      effects.record('consul registrations', async () => {
        unsubscribe?.();
        monitor?.stop();
        await reloading;
        await registrar.shutdown();
      });
      if (config.consul.mode === 'catalog') {
        monitor = createHealthMonitor(clock, deps.checkRunner, (name, result) => {
          log.child({ component: 'health' }).info('check status changed', { workload: name, status: result.status, output: result.output });
          pushRegistrations();
        });
      }
      await agent.reload();
      effects.check('the data plane');
      await dataPlane?.start();
      if (dataPlane !== undefined && deps.statusLink !== undefined) {
        effects.check('the status reports');
        const plane = dataPlane;
        const reporter = createSyncReporter({
          link: deps.statusLink,
          report: () =>
            syncReport({
              doc: statusDocument('failing'),
              sync: typeSync({
                served: plane.cache.current(config.nodeName)?.snapshot,
                acked: plane.cache.acked(config.nodeName),
                streams: (plane.ads?.status().streams ?? []).filter((st) => st.node === config.nodeName),
              }),
              agentVersion: packageVersion(),
              now: clock.now(),
            }),
          clock,
          log: log.child({ component: 'sync-report' }),
        });
        const offEnvoy = plane.onEnvoyChange?.(() => reporter.poke());
        effects.record('status reports', () => {
          offEnvoy?.();
          reporter.stop();
        });
        reporter.start();
      }
      effects.check('the workloads directory watch');
      if (deps.watchFiles !== false) {
        const dir = watchDir({ dir: config.workloadsDir, clock, log: wlog, onChange: () => void agent.reload() });
        effects.record('workloads directory watch', () => dir.close());
      }
      log.info('mesh-agent running', {
        node: config.nodeName,
        consul: config.consul.address,
        mode: config.consul.mode,
        status: server.address,
      });
    },
    reload() {
      reloading = reloading.then(doReload).catch((err: unknown) => wlog.error('reload failed', { error: err }));
      return reloading;
    },
    status: () => statusDocument('all'),
    xdsStatus: () => {
      const dp = deps.dataPlane;
      if (dp === undefined) return undefined;
      return xdsSection(dp.xdsStatus());
    },
    view: () => watcher?.view() ?? { version: 0, services: {} },
    onView(listener) {
      if (watcher === undefined) throw new Error('agent not started');
      return watcher.onView(listener);
    },
    async stop() {
      if (!effects.stopping) log.info('stopping: undoing what start-up made', { effects: effects.summary().map((e) => e.name) });
      await effects.unwind();
      log.info('mesh-agent stopped', {});
    },
  };
  return agent;
}

/**
 * The last known catalog on disk (dataDir/catalog-view.json) lags the newest
 * view by at most this much (a stop saves the newest). Each save serializes
 * the whole view (700 KB at 200 upstreams x 10): at 1 s it was a steady source
 * of old-generation garbage, and the full GCs it brought showed in the tail of
 * Consul write -> Envoy applied (bench vs-consul).
 */
const SAVE_EVERY_MS = 5_000;

const mb = (bytes: number) => Math.round((bytes / 1_048_576) * 10) / 10;

/** The agent process: pid, uptime and memory, for status. */
function processFacts(): NonNullable<StatusDocument['agent']> {
  const m = process.memoryUsage();
  return {
    pid: process.pid,
    uptimeSeconds: Math.round(process.uptime()),
    memoryMb: { rss: mb(m.rss), heapUsed: mb(m.heapUsed), heapTotal: mb(m.heapTotal), external: mb(m.external) },
  };
}
