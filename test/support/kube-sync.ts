/**
 * The world of the catalog-sync tests: a real API server (startKube), a real
 * Consul dev agent and a real control plane running the sync, plus helpers
 * to write what a controller manager would (EndpointSlices of pods) and what
 * a VM agent in catalog mode would (a mesh service instance on its node).
 */
import type * as k8s from '@kubernetes/client-node';
import type { Test } from 'tap';
import type { ConsulClient } from '../../agent/discovery/consul-client.js';
import { createConsulHttpClient } from '../../agent/discovery/consul-http.js';
import { META } from '../../lib/consul-meta.js';
import { startTestControlPlane, type TestControlPlane } from './controlplane.js';
import { TEST_SLICE_MANAGER, type TestKube } from './kube.js';

export const CLUSTER = 'east';
export const SYNC_NODE = `k8s-${CLUSTER}`;

/** A control plane whose sync syncs `namespaces` to Consul and VM services into `fromNamespace`. */
export async function startSyncingControlPlane(
  t: Pick<Test, 'teardown'>,
  kube: TestKube,
  consulAddr: string,
  o: { namespaces: string[]; fromNamespace?: string; dataDir?: string; resync?: string },
): Promise<TestControlPlane> {
  const cp = await startTestControlPlane({
    ...(o.dataDir === undefined ? {} : { dataDir: o.dataDir }),
    metricsListen: '127.0.0.1:0',
    kubernetes: {
      kubeconfig: kube.kubeconfig,
      cluster: CLUSTER,
      sync: {
        consul: { address: consulAddr },
        toConsul: { namespaces: o.namespaces },
        ...(o.fromNamespace === undefined ? {} : { fromConsul: { namespace: o.fromNamespace } }),
        resync: o.resync ?? '1s',
      },
    },
  });
  t.teardown(() => cp.stop());
  return cp;
}

/** A Service with an app port `http` 8080 and the mesh port `mesh` 15001. */
export function meshService(ns: string, name: string, annotations: Record<string, string> = {}): k8s.V1Service {
  return {
    metadata: { name, namespace: ns, annotations },
    spec: {
      selector: { app: name },
      ports: [
        { name: 'http', port: 8080, targetPort: 8080, appProtocol: 'http' },
        { name: 'mesh', port: 15001, targetPort: 15001 },
      ],
    },
  };
}

export interface SliceEndpoint {
  pod: k8s.V1Pod;
  ready?: boolean;
}

/** An EndpointSlice of the Service (as the controller manager would write it), labelled as the test's. */
export function podSlice(ns: string, service: string, name: string, endpoints: readonly SliceEndpoint[]): k8s.V1EndpointSlice {
  return {
    metadata: {
      name,
      namespace: ns,
      labels: { 'kubernetes.io/service-name': service, 'endpointslice.kubernetes.io/managed-by': TEST_SLICE_MANAGER },
    },
    addressType: 'IPv4',
    ports: [
      { name: 'http', port: 8080, protocol: 'TCP', appProtocol: 'http' },
      { name: 'mesh', port: 15001, protocol: 'TCP' },
    ],
    endpoints: endpoints.map((e) => ({
      addresses: [e.pod.status?.podIP ?? ''],
      conditions: { ready: e.ready ?? true },
      targetRef: { kind: 'Pod', name: e.pod.metadata?.name ?? '', namespace: ns, uid: e.pod.metadata?.uid ?? '' },
    })),
  };
}

export interface SyncedInstance {
  node: string;
  id: string;
  address: string;
  port: number;
  meta: Record<string, string>;
}

/** Instances of a Consul service on the sync's node, sorted by address. */
export async function syncedInstances(consulAddr: string, service: string): Promise<SyncedInstance[]> {
  const res = await fetch(`http://${consulAddr}/v1/catalog/service/${service}`);
  const raw = (await res.json()) as Array<{
    Node: string;
    ServiceID: string;
    ServiceAddress: string;
    ServicePort: number;
    ServiceMeta: Record<string, string>;
  }>;
  return raw
    .filter((r) => r.Node === SYNC_NODE)
    .map((r) => ({ node: r.Node, id: r.ServiceID, address: r.ServiceAddress, port: r.ServicePort, meta: r.ServiceMeta }))
    .sort((a, b) => a.address.localeCompare(b.address));
}

/** A VM node registering its workloads in the catalog (like mesh-agent in catalog mode). */
export function vmNode(consulAddr: string, nodeName: string, address: string): ConsulClient {
  return createConsulHttpClient({ mode: 'catalog', address: consulAddr, token: '', datacenter: '', nodeName, nodeAddress: address });
}

export async function registerVmWorkload(
  vm: ConsulClient,
  o: { service: string; node: string; address: string; port: number; meshPort: number; health?: 'passing' | 'critical' },
) {
  await vm.register(
    {
      id: `${o.service}-${o.node}`,
      name: o.service,
      address: o.address,
      port: o.port,
      tags: [],
      meta: {
        [META.spiffeId]: `spiffe://example.org/ns/default/sa/${o.service}`,
        [META.protocol]: 'http',
        [META.meshPort]: String(o.meshPort),
        [META.node]: o.node,
      },
      weight: 1,
      meshPort: o.meshPort,
      check:
        o.health === undefined
          ? undefined
          : { name: `${o.service} check`, kind: 'tcp', target: `${o.address}:${o.port}`, interval: '10s', timeout: '1s', status: o.health },
    },
    { meshCheckTtlMs: 0 },
  );
}
