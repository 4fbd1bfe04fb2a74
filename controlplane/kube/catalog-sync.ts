/**
 * The catalog sync, a component of `mesh-controlplane run` (on when
 * controlplane.yaml has `kubernetes.sync`): Kubernetes -> Consul and, with
 * `fromConsul`, Consul -> Kubernetes. It writes through the Consul catalog
 * API on one synthetic node per cluster and keeps ServiceIdentity resources
 * in the control plane's own policy store, so agents learn who may serve a
 * Kubernetes service from the control plane, never from Consul meta.
 */
import type { Registry } from 'prom-client';
import { createConsulHttpClient } from '../../agent/discovery/consul-http.js';
import type { Clock } from '../../lib/clock.js';
import type { Logger } from '../../lib/logger.js';
import type { PolicyStore } from '../policy/policy-store.js';
import { startFromConsulSync } from './from-consul-sync.js';
import { connectKube } from './kube-client.js';
import type { KubeSyncConfig } from './sync-config.js';
import { NODE_META_SYNC, syncActor, syncNodeName } from './sync-names.js';
import { createSyncReporter, type SyncStatus } from './sync-status.js';
import { startToConsulSync } from './to-consul-sync.js';

export interface CatalogSync {
  status(): SyncStatus;
  stop(): Promise<void>;
}

export interface CatalogSyncDeps {
  readonly policies: PolicyStore;
  readonly trustDomain: string;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly registry?: Registry;
}

export async function startCatalogSync(
  kube: { kubeconfig?: string; cluster: string },
  config: KubeSyncConfig,
  deps: CatalogSyncDeps,
): Promise<CatalogSync> {
  const { clock } = deps;
  const logger = deps.logger.child({ component: 'k8s-sync', cluster: kube.cluster });
  const conn = await connectKube(kube.kubeconfig);
  const nodeName = syncNodeName(kube.cluster, config.toConsul.nodeName);
  const consul = createConsulHttpClient({
    mode: 'catalog',
    address: config.consul.address,
    token: config.consul.token,
    datacenter: config.consul.datacenter,
    nodeName,
    nodeAddress: config.toConsul.nodeAddress,
    nodeMeta: { [NODE_META_SYNC]: kube.cluster },
  });
  const report = createSyncReporter({
    cluster: kube.cluster,
    logger,
    now: () => clock.now(),
    ...(deps.registry === undefined ? {} : { registry: deps.registry }),
  });
  const common = { conn, consul, clock, logger, report, resyncMs: config.resync };
  const toConsul = config.toConsul.enabled
    ? startToConsulSync({
        ...common,
        policies: deps.policies,
        actor: syncActor(kube.cluster),
        ctx: {
          cluster: kube.cluster,
          trustDomain: deps.trustDomain,
          namespaces: config.toConsul.namespaces,
          meshPortName: config.toConsul.meshPortName,
        },
      })
    : undefined;
  const fromConsul =
    config.fromConsul === undefined
      ? undefined
      : startFromConsulSync({ ...common, ctx: { cluster: kube.cluster, namespace: config.fromConsul.namespace, syncNode: nodeName } });
  logger.info('catalog sync started', {
    consul: config.consul.address,
    node: nodeName,
    toConsul: config.toConsul.enabled ? config.toConsul.namespaces : false,
    fromConsul: config.fromConsul?.namespace ?? false,
  });
  return {
    status: () => report.status(),
    async stop() {
      await Promise.all([toConsul?.stop(), fromConsul?.stop()]);
      logger.info('catalog sync stopped');
    },
  };
}
