/**
 * Kubernetes -> Consul, the shell: watches Services, EndpointSlices and Pods
 * (all namespaces), and after every change (debounced) and every resync
 * period reconciles: the ServiceIdentity resources first (policy store), then
 * the registrations on the synthetic node (Consul). Reconciles run one at a
 * time; nothing is deleted before all three watches have listed once. The
 * registrations of the synthetic node that are not wanted any more (a deleted
 * Service or endpoint, also while the sync was down) are deregistered; a
 * restarted Consul that lost them gets them again on the next reconcile.
 */
import type { V1EndpointSlice, V1Pod, V1Service } from '@kubernetes/client-node';
import type { ConsulClient, ServiceRegistration } from '../../agent/discovery/consul-client.js';
import type { Clock, TimerHandle } from '../../lib/clock.js';
import type { Logger } from '../../lib/logger.js';
import { stableJson } from '../../lib/stable-json.js';
import type { PolicyStore } from '../policy/policy-store.js';
import { keepIdentities } from './identity-keeper.js';
import type { KubeConnection } from './kube-client.js';
import { type KubeWatch, startKubeWatch } from './kube-watch.js';
import type { SyncReporter } from './sync-status.js';
import { planToConsul, type ToConsulContext } from './to-consul.js';

/** Changes within this window are reconciled together. */
const DEBOUNCE_MS = 20;
/** Registration IDs the sync makes (registrationId()); others on the node are never touched. */
const ID_PREFIX = 'k8s-';

export interface ToConsulSyncDeps {
  readonly conn: KubeConnection;
  readonly consul: ConsulClient;
  readonly policies: PolicyStore;
  readonly ctx: ToConsulContext;
  readonly actor: string;
  readonly resyncMs: number;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly report: SyncReporter;
}

export interface ToConsulSync {
  stop(): Promise<void>;
}

export function startToConsulSync(d: ToConsulSyncDeps): ToConsulSync {
  const { conn, clock, logger } = d;
  const core = conn.kc.makeApiClient(conn.k8s.CoreV1Api);
  const discovery = conn.kc.makeApiClient(conn.k8s.DiscoveryV1Api);
  let stopped = false;
  let debounce: TimerHandle | undefined;
  let resync: TimerHandle | undefined;
  let running: Promise<void> | undefined;
  let again = false;
  /** What the sync last registered, by ID (to skip unchanged registrations). */
  const written = new Map<string, string>();

  const schedule = () => {
    if (stopped || debounce !== undefined) return;
    debounce = clock.setTimer(DEBOUNCE_MS, () => {
      debounce = undefined;
      void kick();
    });
  };
  const onError = (what: string) => (err: Error) => d.report.error('to-consul', `${what}: ${err.message}`);
  const common = { conn, clock, logger, onChange: schedule };
  const services: KubeWatch<V1Service> = startKubeWatch<V1Service>({
    ...common,
    path: '/api/v1/services',
    list: () => core.listServiceForAllNamespaces(),
    onError: onError('watch services'),
  });
  const slices: KubeWatch<V1EndpointSlice> = startKubeWatch<V1EndpointSlice>({
    ...common,
    path: '/apis/discovery.k8s.io/v1/endpointslices',
    list: () => discovery.listEndpointSliceForAllNamespaces(),
    onError: onError('watch endpointslices'),
  });
  const pods: KubeWatch<V1Pod> = startKubeWatch<V1Pod>({
    ...common,
    path: '/api/v1/pods',
    list: () => core.listPodForAllNamespaces(),
    onError: onError('watch pods'),
  });

  async function reconcile(): Promise<void> {
    if (!services.synced() || !slices.synced() || !pods.synced()) return;
    const started = clock.now();
    const plan = planToConsul({ services: services.list(), slices: slices.list(), pods: pods.list() }, d.ctx);
    const identities = keepIdentities(d.policies, plan.identities, { cluster: d.ctx.cluster, actor: d.actor });
    if (identities.applied.length + identities.deleted.length > 0) {
      logger.info('service identities kept', { applied: identities.applied, deleted: identities.deleted });
    }
    const present = await d.consul.registeredIds();
    const wanted = new Map<string, ServiceRegistration>(plan.registrations.map((r) => [r.id, r]));
    let registered = 0;
    let deregistered = 0;
    for (const [id, reg] of wanted) {
      const body = stableJson(reg);
      if (present.has(id) && written.get(id) === body) continue;
      written.delete(id);
      await d.consul.register(reg, { meshCheckTtlMs: 0 });
      written.set(id, body);
      registered += 1;
    }
    for (const id of present) {
      if (wanted.has(id) || !id.startsWith(ID_PREFIX)) continue;
      await d.consul.deregister(id);
      written.delete(id);
      deregistered += 1;
    }
    if (registered + deregistered > 0) logger.info('kubernetes services synced to consul', { registered, deregistered });
    d.report.toConsul({
      services: plan.services.length,
      registrations: wanted.size,
      identities: plan.identities.filter((i) => i.allowedIdentities.length > 0).length,
      skipped: plan.skipped,
      conflicts: identities.conflicts,
      lists: services.lists() + slices.lists() + pods.lists(),
      atMs: clock.now(),
      tookMs: clock.now() - started,
    });
  }

  /** Runs a reconcile now, or once more after the one in flight. */
  async function kick(): Promise<void> {
    if (stopped) return;
    if (running !== undefined) {
      again = true;
      return;
    }
    running = reconcile()
      .catch((err: unknown) => {
        d.report.error('to-consul', `reconcile: ${(err as Error).message}`);
        resyncSoon();
      })
      .finally(() => {
        running = undefined;
        if (again) {
          again = false;
          schedule();
        }
      });
    await running;
  }

  const RETRY_MS = 1_000;
  const resyncSoon = () => armResync(Math.min(RETRY_MS, d.resyncMs));
  function armResync(ms: number) {
    resync?.cancel();
    resync = clock.setTimer(ms, () => {
      resync = undefined;
      void kick().finally(() => {
        if (resync === undefined && !stopped) armResync(d.resyncMs);
      });
    });
  }
  armResync(d.resyncMs);

  return {
    async stop() {
      stopped = true;
      debounce?.cancel();
      resync?.cancel();
      await Promise.all([services.stop(), slices.stop(), pods.stop()]);
      await running;
    },
  };
}
