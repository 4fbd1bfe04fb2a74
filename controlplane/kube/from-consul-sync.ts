/**
 * Consul -> Kubernetes, the shell: the mesh services and their instances,
 * then the owned Services and EndpointSlices of the namespace brought to
 * planFromConsul()'s answer; again as soon as a blocking query sees the list
 * of services or the health of one of them change, at the latest after the
 * resync period.
 * Only objects carrying the ownership labels of this cluster's sync are read,
 * replaced or deleted (deletes carry the uid as a precondition); a name held
 * by anything else is a conflict, reported and left alone.
 */
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import type { ConsulClient, HealthEntry } from '../../agent/discovery/consul-client.js';
import { type BackoffPolicy, backoffDelay } from '../../lib/backoff.js';
import type { Clock, TimerHandle } from '../../lib/clock.js';
import type { Logger } from '../../lib/logger.js';
import { ANNOTATION_HASH, type FromConsulContext, planFromConsul } from './from-consul.js';
import type { KubeConnection } from './kube-client.js';
import { LABEL_CLUSTER, LABEL_MANAGED_BY, LABEL_SERVICE_NAME, MANAGED_BY } from './sync-names.js';
import type { SyncReporter } from './sync-status.js';

const BACKOFF: BackoffPolicy = { initialMs: 200, maxMs: 5_000 };
const ERROR_PAUSE_MS = 1_000;

export interface FromConsulSyncDeps {
  readonly conn: KubeConnection;
  readonly consul: ConsulClient;
  readonly ctx: FromConsulContext;
  readonly resyncMs: number;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly report: SyncReporter;
}

export interface FromConsulSync {
  stop(): Promise<void>;
}

const statusCode = (err: unknown): number | undefined => (err as { code?: unknown }).code as number | undefined;

interface Named {
  metadata?: { name?: string; uid?: string; resourceVersion?: string; annotations?: Record<string, string> };
}

/** How one kind of object is listed, created, replaced and deleted (Services and EndpointSlices differ only in the API). */
interface KindApi<T extends Named> {
  list(): Promise<T[]>;
  create(obj: T): Promise<unknown>;
  replace(obj: T, existing: T): Promise<unknown>;
  remove(existing: T): Promise<unknown>;
}

export function startFromConsulSync(d: FromConsulSyncDeps): FromConsulSync {
  const { conn, clock, logger, ctx } = d;
  const core = conn.kc.makeApiClient(conn.k8s.CoreV1Api);
  const discovery = conn.kc.makeApiClient(conn.k8s.DiscoveryV1Api);
  const namespace = ctx.namespace;
  const labelSelector = `${LABEL_MANAGED_BY}=${MANAGED_BY},${LABEL_CLUSTER}=${ctx.cluster}`;
  const deleteBody = (existing: Named) => ({ preconditions: { uid: existing.metadata?.uid ?? '' } });
  const services: KindApi<V1Service> = {
    list: async () => (await core.listNamespacedService({ namespace, labelSelector })).items,
    create: (body) => core.createNamespacedService({ namespace, body }),
    replace: (body, existing) =>
      core.replaceNamespacedService({
        name: body.metadata?.name ?? '',
        namespace,
        body: {
          ...body,
          metadata: { ...body.metadata, resourceVersion: existing.metadata?.resourceVersion ?? '' },
          // Assigned by the API server, immutable: carried over.
          spec: { ...body.spec, clusterIPs: existing.spec?.clusterIPs ?? ['None'] },
        },
      }),
    remove: (existing) => core.deleteNamespacedService({ name: existing.metadata?.name ?? '', namespace, body: deleteBody(existing) }),
  };
  const slices: KindApi<V1EndpointSlice> = {
    list: async () => (await discovery.listNamespacedEndpointSlice({ namespace, labelSelector })).items,
    create: (body) => discovery.createNamespacedEndpointSlice({ namespace, body }),
    replace: (body, existing) =>
      discovery.replaceNamespacedEndpointSlice({
        name: body.metadata?.name ?? '',
        namespace,
        body: { ...body, metadata: { ...body.metadata, resourceVersion: existing.metadata?.resourceVersion ?? '' } },
      }),
    remove: (existing) =>
      discovery.deleteNamespacedEndpointSlice({ name: existing.metadata?.name ?? '', namespace, body: deleteBody(existing) }),
  };

  /** Creates and replaces (the hash differs) the desired objects among the owned ones; returns the names held by others. */
  async function upsert<T extends Named>(api: KindApi<T>, owned: ReadonlyMap<string, T>, desired: readonly T[]): Promise<string[]> {
    const conflicts: string[] = [];
    for (const obj of desired) {
      const name = obj.metadata?.name ?? '';
      const existing = owned.get(name);
      if (existing === undefined) {
        try {
          await api.create(obj);
        } catch (err) {
          if (statusCode(err) !== 409) throw err;
          conflicts.push(name);
        }
      } else if (existing.metadata?.annotations?.[ANNOTATION_HASH] !== obj.metadata?.annotations?.[ANNOTATION_HASH]) {
        await api.replace(obj, existing);
      }
    }
    return conflicts;
  }

  /** Deletes the owned objects not desired (gone already, or replaced meanwhile: left for the next round). */
  async function prune<T extends Named>(api: KindApi<T>, owned: ReadonlyMap<string, T>, desired: readonly T[]): Promise<void> {
    const wanted = new Set(desired.map((o) => o.metadata?.name ?? ''));
    for (const [name, existing] of owned) {
      if (wanted.has(name)) continue;
      try {
        await api.remove(existing);
      } catch (err) {
        if (statusCode(err) !== 404 && statusCode(err) !== 409) throw err;
      }
    }
  }

  const listOwned = async <T extends Named>(api: KindApi<T>) => new Map((await api.list()).map((o) => [o.metadata?.name ?? '', o]));

  let stopped = false;
  let index = 0;
  let attempt = 0;
  const abort = new AbortController();
  let wake: { timer: TimerHandle; resolve: () => void } | undefined;
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      wake = {
        timer: clock.setTimer(ms, () => {
          wake = undefined;
          resolve();
        }),
        resolve,
      };
    });

  /** The Consul indexes of the last read: the catalog's service list, and each service's health. */
  const healthIndex = new Map<string, number>();

  async function round(): Promise<void> {
    const list = await d.consul.meshServices({ index: 0, waitMs: 0, signal: abort.signal });
    index = list.index;
    if (stopped) return;
    const started = clock.now();
    const byService = new Map<string, readonly HealthEntry[]>();
    healthIndex.clear();
    for (const name of list.names) {
      const health = await d.consul.healthService(name, { index: 0, waitMs: 0, signal: abort.signal });
      byService.set(name, health.entries);
      healthIndex.set(name, health.index);
    }
    const plan = planFromConsul(byService, ctx);
    const [ownedServices, ownedSlices] = [await listOwned(services), await listOwned(slices)];
    // Services before their slices are created; slices before their Services are deleted.
    const serviceConflicts = await upsert(services, ownedServices, plan.services);
    // A Service name held by someone else gets no slice of ours: it would add endpoints to their Service.
    const wantedSlices = plan.slices.filter((s) => !serviceConflicts.includes(s.metadata?.labels?.[LABEL_SERVICE_NAME] ?? ''));
    const sliceConflicts = await upsert(slices, ownedSlices, wantedSlices);
    await prune(slices, ownedSlices, wantedSlices);
    await prune(services, ownedServices, plan.services);
    d.report.fromConsul({
      services: plan.services.length,
      endpointSlices: plan.slices.length,
      skipped: plan.skipped,
      conflicts: [...serviceConflicts.map((n) => `Service ${n}`), ...sliceConflicts.map((n) => `EndpointSlice ${n}`)],
      atMs: clock.now(),
      tookMs: clock.now() - started,
    });
  }

  /**
   * Blocks until the catalog's service list or the health of a service read in the last
   * round changes (one blocking query each, the first answer ends the others), or the
   * resync period passes. A restarted Consul starts its indexes again: the queries then
   * wait at most the period.
   */
  async function waitForChange(): Promise<void> {
    const local = new AbortController();
    const cancel = () => local.abort();
    abort.signal.addEventListener('abort', cancel);
    const query = { waitMs: d.resyncMs, signal: local.signal };
    // A failed query (Consul down) ends the wait after a pause, so the next round reports the error without spinning.
    const ended = (p: Promise<unknown>) =>
      p.then(
        () => undefined,
        () =>
          new Promise<void>((resolve) => {
            if (local.signal.aborted) return resolve();
            const timer = clock.setTimer(Math.min(ERROR_PAUSE_MS, d.resyncMs), resolve);
            local.signal.addEventListener('abort', () => {
              timer.cancel();
              resolve();
            });
          }),
      );
    try {
      await Promise.race([
        // Index 0 would answer at once: at least 1 keeps every query blocking.
        ended(d.consul.meshServices({ ...query, index: Math.max(1, index) })),
        ...[...healthIndex].map(([name, i]) => ended(d.consul.healthService(name, { ...query, index: Math.max(1, i) }))),
      ]);
    } finally {
      abort.signal.removeEventListener('abort', cancel);
      local.abort();
    }
  }

  const loop = (async () => {
    while (!stopped) {
      try {
        await round();
        attempt = 0;
        if (!stopped) await waitForChange();
      } catch (err) {
        if (stopped) break;
        d.report.error('from-consul', (err as Error).message);
        await sleep(backoffDelay(BACKOFF, attempt));
        attempt += 1;
      }
    }
  })();
  logger.debug('consul -> kubernetes sync started', { namespace });

  return {
    async stop() {
      stopped = true;
      abort.abort();
      if (wake !== undefined) {
        wake.timer.cancel();
        wake.resolve();
      }
      await loop;
    },
  };
}
