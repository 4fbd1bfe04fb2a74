/**
 * Consul -> Kubernetes, the shell: a blocking query on the mesh services
 * (it wakes on any registration or deregistration, at the latest after the
 * resync period), their instances, then the owned Services and
 * EndpointSlices of the namespace brought to planFromConsul()'s answer.
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

  /** Creates, replaces (hash differs) and, with `prune`, deletes owned objects; returns the names held by others. */
  async function converge<T extends Named>(api: KindApi<T>, desired: readonly T[], prune: boolean): Promise<string[]> {
    const owned = new Map((await api.list()).map((o) => [o.metadata?.name ?? '', o]));
    const conflicts: string[] = [];
    if (!prune) {
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
    const wanted = new Set(desired.map((o) => o.metadata?.name ?? ''));
    for (const [name, existing] of owned) {
      if (wanted.has(name)) continue;
      try {
        await api.remove(existing);
      } catch (err) {
        if (statusCode(err) !== 404 && statusCode(err) !== 409) throw err;
      }
    }
    return conflicts;
  }

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

  async function round(): Promise<void> {
    const list = await d.consul.meshServices({ index, waitMs: d.resyncMs, signal: abort.signal });
    // A restarted Consul starts its indexes again: an index that goes back means "start over".
    index = list.index < index ? 0 : list.index;
    if (stopped) return;
    const started = clock.now();
    const byService = new Map<string, readonly HealthEntry[]>();
    for (const name of list.names) {
      byService.set(name, (await d.consul.healthService(name, { index: 0, waitMs: 0, signal: abort.signal })).entries);
    }
    const plan = planFromConsul(byService, ctx);
    // Services before their slices are created; slices before their Services are deleted.
    const serviceConflicts = await converge(services, plan.services, false);
    // A Service name held by someone else gets no slice of ours: it would add endpoints to their Service.
    const wantedSlices = plan.slices.filter((s) => !serviceConflicts.includes(s.metadata?.labels?.[LABEL_SERVICE_NAME] ?? ''));
    const sliceConflicts = await converge(slices, wantedSlices, false);
    await converge(slices, wantedSlices, true);
    await converge(services, plan.services, true);
    d.report.fromConsul({
      services: plan.services.length,
      endpointSlices: plan.slices.length,
      skipped: plan.skipped,
      conflicts: [...serviceConflicts.map((n) => `Service ${n}`), ...sliceConflicts.map((n) => `EndpointSlice ${n}`)],
      atMs: clock.now(),
      tookMs: clock.now() - started,
    });
  }

  const loop = (async () => {
    while (!stopped) {
      try {
        await round();
        attempt = 0;
      } catch (err) {
        if (stopped) break;
        index = 0;
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
