/**
 * The data plane of one node: workloads + CatalogView + SVIDs -> ProxyModel
 * -> snapshot -> ADS server -> the supervised Envoy. Rebuilds are coalesced
 * (many inputs changing in one tick give one snapshot); a snapshot that fails
 * its checks is refused and Envoy keeps the previous one (status shows why).
 *
 * The parts arrive as small interfaces so each can be tested alone; the real
 * ones are wired in run-command.ts.
 */
import type { Clock } from '../../lib/clock.js';
import { toMeshError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import type { CatalogView } from '../discovery/catalog-view.js';
import { EMPTY_VIEW } from '../discovery/catalog-view.js';
import type { IdentitiesStatus } from '../identity/identity-status.js';
import { buildModel, type ModelProblem } from '../model/build-model.js';
import type { Workload } from '../workloads/workload.js';
import type { XdsResource } from '../xds/resources/common.js';
import { type AdsServer, type AdsStatus, idleAdsStatus, startAdsServer } from '../xds/server/ads-server.js';
import {
  BuildMemo,
  buildSnapshot,
  type Identities,
  makeSnapshot,
  RESOURCE_KINDS,
  type ResourceKind,
  type Snapshot,
} from '../xds/snapshot.js';

/** Where SVIDs and the trust bundle come from (agent/identity/workload-identities.ts). */
export interface IdentitySource {
  start(): Promise<void>;
  setWanted(spiffeIds: readonly string[]): void;
  current(): Identities;
  onChange(listener: () => void): () => void;
  states(): IdentitiesStatus;
  stop(): void;
}

/** The supervised Envoy (agent/envoy/supervisor.ts). */
export interface EnvoyRunner {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Hot restart when the bootstrap or the binary (path or file) changed. */
  reload(next: { bootstrap?: Record<string, unknown>; binary?: string }): Promise<'hot-restarted' | 'unchanged'>;
  status(): { state: string; [key: string]: unknown };
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
}

export interface UpstreamStatus {
  readonly service: string;
  readonly localPort: number;
  readonly caller: string;
  readonly protocol: string;
  /** Endpoints Envoy gets for it. */
  readonly endpoints: number;
  /** Catalog instances without a SPIFFE ID (outside the mesh), left out. */
  readonly skipped: number;
}

export interface DataPlaneStatus {
  readonly envoy: { state: string; [key: string]: unknown };
  readonly xds: AdsStatus & { readonly lastError?: string; readonly builtAt?: number };
  readonly identity: IdentitiesStatus;
  readonly modelProblems: readonly ModelProblem[];
  readonly upstreams: readonly UpstreamStatus[];
}

export interface DataPlane {
  start(): Promise<void>;
  /** New workloads or catalog view: schedules a rebuild. */
  update(input: { workloads?: readonly Workload[]; view?: CatalogView }): void;
  /** Test hook: replaces (or with undefined, stops replacing) one resource of the built snapshot. */
  overrideResource(kind: ResourceKind, name: string, resource: XdsResource | undefined): void;
  /**
   * Applies a new Envoy bootstrap or binary with a hot restart (established
   * connections stay); also notices a binary replaced in place. Never throws:
   * a failed reload leaves the running Envoy and is logged.
   */
  reloadEnvoy(next?: { bootstrap?: Record<string, unknown>; binary?: string }): Promise<'hot-restarted' | 'unchanged' | 'failed'>;
  /** Resolves once pending rebuilds ran. */
  settled(): Promise<void>;
  status(): DataPlaneStatus;
  readonly ads: AdsServer | undefined;
  stop(): Promise<void>;
}

function withOverrides(
  snapshot: Snapshot,
  overrides: ReadonlyMap<string, { kind: ResourceKind; name: string; resource: XdsResource }>,
  memo: BuildMemo,
) {
  const resources = {} as { [K in ResourceKind]: Map<string, XdsResource> };
  for (const kind of RESOURCE_KINDS) resources[kind] = new Map(snapshot.resources[kind]);
  for (const o of overrides.values()) resources[o.kind].set(o.name, o.resource);
  return makeSnapshot(resources, [...snapshot.buildProblems], memo.hashes);
}

/** Each upstream of a built model as status shows it. */
function upstreamStatuses(built: ReturnType<typeof buildModel> | undefined): UpstreamStatus[] {
  return (built?.model.upstreams ?? []).map((u) => ({
    service: u.service,
    localPort: u.localPort,
    caller: u.workload,
    protocol: u.protocol,
    endpoints: u.instances.length,
    skipped: built?.skippedInstances[u.service] ?? 0,
  }));
}

export function createDataPlane(options: DataPlaneOptions): DataPlane {
  const { log, identities } = options;
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
  const overrides = new Map<string, { kind: ResourceKind; name: string; resource: XdsResource }>();
  let unsubscribe: (() => void) | undefined;
  const memo = new BuildMemo();

  const wantedIds = () => [...new Set(workloads.map((w) => w.spiffeId))];

  const rebuild = () => {
    if (ads === undefined || stopped) return;
    const ids = identities.current();
    const built = buildModel({
      nodeName: options.nodeName,
      trustDomain: options.trustDomain,
      workloads,
      view,
      svids: new Set(ids.certs.keys()),
    });
    const before = JSON.stringify(problems);
    problems = built.problems;
    if (JSON.stringify(problems) !== before && problems.length > 0) log.warn('some workloads are not in the data plane yet', { problems });
    lastBuilt = built;
    let snapshot = buildSnapshot(built.model, ids, memo);
    if (overrides.size > 0) snapshot = withOverrides(snapshot, overrides, memo);
    try {
      if (ads.setSnapshot(snapshot)) {
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
      const message = toMeshError(err).message;
      if (message !== lastError)
        log.error('snapshot refused; Envoy keeps the previous configuration', { code: 'MESH_E_XDS_SNAPSHOT_INVALID', error: message });
      lastError = message;
    }
  };

  const schedule = () => {
    scheduled ??= new Promise<void>((resolve) =>
      setImmediate(() => {
        scheduled = undefined;
        try {
          rebuild();
        } finally {
          resolve();
        }
      }),
    );
  };

  return {
    get ads() {
      return ads;
    },
    async start() {
      ads = await startAdsServer({
        socketPath: options.adsSocket,
        log: log.child({ component: 'xds' }),
        clock: options.clock,
        ...(options.adsSocketGid === undefined ? {} : { socketGid: options.adsSocketGid }),
      });
      unsubscribe = identities.onChange(schedule);
      await identities.start();
      identities.setWanted(wantedIds());
      schedule();
      await scheduled;
      await options.envoy?.start();
    },
    update(input) {
      if (input.workloads !== undefined) {
        workloads = input.workloads;
        if (ads !== undefined) identities.setWanted(wantedIds());
      }
      if (input.view !== undefined) view = input.view;
      schedule();
    },
    overrideResource(kind, name, resource) {
      const key = `${kind}\0${name}`;
      if (resource === undefined) overrides.delete(key);
      else overrides.set(key, { kind, name, resource });
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
    status() {
      const adsStatus = ads?.status() ?? idleAdsStatus(options.adsSocket);
      return {
        envoy: options.envoy?.status() ?? { state: 'external' },
        xds: { ...adsStatus, ...(lastError === undefined ? {} : { lastError }), ...(builtAt === undefined ? {} : { builtAt }) },
        identity: identities.states(),
        modelProblems: problems,
        upstreams: upstreamStatuses(lastBuilt),
      };
    },
    async stop() {
      stopped = true;
      await options.envoy?.stop();
      unsubscribe?.();
      identities.stop();
      await ads?.close();
    },
  };
}
