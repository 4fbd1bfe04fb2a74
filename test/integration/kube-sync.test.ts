/**
 * The catalog sync against a real API server, a real Consul and the real
 * control plane: Kubernetes Services and their ready endpoints appear in
 * Consul with the Pods' identities (and the matching ServiceIdentity in the
 * control plane's policy), changes and deletions follow; VM mesh services
 * become selector-less Services with EndpointSlices and go away when their
 * workloads deregister; objects the sync did not create stay byte-for-byte.
 */
import t from 'tap';
import { startConsulDev } from '../support/consul.js';
import { startKube } from '../support/kube.js';
import {
  CLUSTER,
  meshService,
  podSlice,
  registerVmWorkload,
  SYNC_NODE,
  startSyncingControlPlane,
  syncedInstances,
  vmNode,
} from '../support/kube-sync.js';
import { waitFor } from '../support/wait.js';

t.setTimeout(300_000);

const allowedOf = (source: unknown) => (source as { spec?: { allowedIdentities?: string[] } } | undefined)?.spec?.allowedIdentities;

t.test('catalog sync lifecycle, both ways', async (t) => {
  const kube = await startKube(t);
  const consul = await startConsulDev();
  t.teardown(() => consul.stop());
  const shop = await kube.namespace('shop');
  const other = await kube.namespace('other');
  const vms = await kube.namespace('vms');
  const cp = await startSyncingControlPlane(t, kube, consul.httpAddr, { namespaces: [shop], fromNamespace: vms });
  const td = cp.trustDomain;

  await kube.serviceAccount(shop, 'web-sa');
  await kube.serviceAccount(shop, 'web-canary');
  const web1 = await kube.runningPod(shop, 'web-1', { serviceAccount: 'web-sa', podIP: '10.244.1.1', labels: { app: 'web' } });
  const web2 = await kube.runningPod(shop, 'web-2', { serviceAccount: 'web-canary', podIP: '10.244.1.2', labels: { app: 'web' } });

  // Objects the sync must never touch, read back in full (resourceVersion included) at the end.
  await kube.core.createNamespacedService({ namespace: other, body: meshService(other, 'legacy') });
  await kube.discovery.createNamespacedEndpointSlice({ namespace: other, body: podSlice(other, 'legacy', 'legacy-1', []) });
  await kube.core.createNamespacedService({ namespace: vms, body: meshService(vms, 'billing') });
  const untouched = async () =>
    JSON.stringify([
      await kube.core.readNamespacedService({ name: 'legacy', namespace: other }),
      await kube.discovery.readNamespacedEndpointSlice({ name: 'legacy-1', namespace: other }),
      await kube.core.readNamespacedService({ name: 'billing', namespace: vms }),
    ]);
  const before = await untouched();
  // A registration on the synthetic node that is not the sync's (not one of its IDs).
  const operatorNode = vmNode(consul.httpAddr, SYNC_NODE, '127.0.0.1');
  await registerVmWorkload(operatorNode, { service: 'note', node: SYNC_NODE, address: '127.0.0.1', port: 1, meshPort: 1 });
  // The service entry without the node's meta: the synthetic node itself is the sync's (it sets its meta).
  const noteEntry = async () =>
    JSON.stringify((await consul.api<Array<Record<string, unknown>>>('/v1/catalog/service/note')).map(({ NodeMeta: _, ...rest }) => rest));
  const noteBefore = await noteEntry();

  await t.test('Kubernetes -> Consul: ready endpoints with the pods identities, within about a second', async (t) => {
    await kube.core.createNamespacedService({ namespace: shop, body: meshService(shop, 'web') });
    const written = Date.now();
    await kube.discovery.createNamespacedEndpointSlice({
      namespace: shop,
      body: podSlice(shop, 'web', 'web-abc', [{ pod: web1 }, { pod: web2 }]),
    });
    const instances = await waitFor(async () => {
      const list = await syncedInstances(consul.httpAddr, 'web');
      return list.length === 2 ? list : undefined;
    });
    t.comment(`new endpoints visible in Consul after ${Date.now() - written} ms`);
    t.same(
      instances.map((i) => [i.address, i.port, i.meta.mesh_spiffe_id, i.meta.mesh_port, i.meta.mesh_protocol]),
      [
        ['10.244.1.1', 8080, `spiffe://${td}/ns/${shop}/sa/web-sa`, '15001', 'http'],
        ['10.244.1.2', 8080, `spiffe://${td}/ns/${shop}/sa/web-canary`, '15001', 'http'],
      ],
      'one instance per ready endpoint, identity from the Pod service account, mesh port from the named port',
    );
    t.equal(instances[0]?.meta['external-source'], 'kubernetes', 'marked as synced');
    t.equal(instances[0]?.meta['external-k8s-ns'], shop);

    const identity = cp.cp.policies.get('ServiceIdentity', `k8s-${CLUSTER}-${shop}-web`);
    t.equal(identity?.updatedBy, `k8s-sync:${CLUSTER}`, 'the ServiceIdentity is the sync own');
    t.same(
      (identity?.source as { spec?: unknown } | undefined)?.spec,
      {
        service: 'web',
        namespace: shop,
        allowedIdentities: [`spiffe://${td}/ns/${shop}/sa/web-canary`, `spiffe://${td}/ns/${shop}/sa/web-sa`],
      },
      'who may serve web comes from the Kubernetes API',
    );
  });

  await t.test('time from a Kubernetes change to Consul (measured, not asserted)', async (t) => {
    const samples: number[] = [];
    for (let i = 0; i < 20; i++) {
      const ready = i % 2 === 1;
      const slice = await kube.discovery.readNamespacedEndpointSlice({ name: 'web-abc', namespace: shop });
      const started = Date.now();
      await kube.discovery.replaceNamespacedEndpointSlice({
        name: 'web-abc',
        namespace: shop,
        body: { ...slice, endpoints: podSlice(shop, 'web', 'web-abc', [{ pod: web1 }, { pod: web2, ready }]).endpoints },
      });
      const want = ready ? 2 : 1;
      await waitFor(async () => ((await syncedInstances(consul.httpAddr, 'web')).length === want ? true : undefined), { intervalMs: 5 });
      samples.push(Date.now() - started);
    }
    samples.sort((a, b) => a - b);
    t.comment(
      `endpoint readiness flips to Consul, 20 samples (API write to Consul answer, 5 ms polling): min ${samples[0]} ms, median ${samples[10]} ms, max ${samples[19]} ms`,
    );
    t.equal(samples.length, 20, 'every flip reached Consul');
    // The gauge is set once the reconcile that registered them ends: wait for it.
    const metrics = await waitFor(async () => {
      const text = await (await fetch(`http://${cp.cp.metricsAddress}/metrics`)).text();
      return text.includes('mesh_controlplane_k8s_sync_objects{direction="to-consul",kind="registration"} 2') ? text : undefined;
    });
    t.pass('the sync metric counts the registrations');
    t.match(metrics, /mesh_controlplane_k8s_sync_errors_total/, 'and its error counter is exported');
  });

  await t.test('an endpoint that stops being ready or leaves the slice is removed', async (t) => {
    const changed = Date.now();
    await kube.discovery.replaceNamespacedEndpointSlice({
      name: 'web-abc',
      namespace: shop,
      body: {
        ...(await kube.discovery.readNamespacedEndpointSlice({ name: 'web-abc', namespace: shop })),
        endpoints: podSlice(shop, 'web', 'web-abc', [{ pod: web1 }, { pod: web2, ready: false }]).endpoints,
      },
    });
    await waitFor(async () => ((await syncedInstances(consul.httpAddr, 'web')).length === 1 ? true : undefined));
    t.comment(`not-ready endpoint gone from Consul after ${Date.now() - changed} ms`);
    t.same(
      allowedOf(cp.cp.policies.get('ServiceIdentity', `k8s-${CLUSTER}-${shop}-web`)?.source),
      [`spiffe://${td}/ns/${shop}/sa/web-sa`],
      'the identity of the pod that left is no longer allowed',
    );
    const slice = await kube.discovery.readNamespacedEndpointSlice({ name: 'web-abc', namespace: shop });
    await kube.discovery.replaceNamespacedEndpointSlice({ name: 'web-abc', namespace: shop, body: { ...slice, endpoints: [] } });
    await waitFor(async () => ((await syncedInstances(consul.httpAddr, 'web')).length === 0 ? true : undefined));
    t.pass('the last endpoint removed: no instance left');
    await waitFor(async () => (cp.cp.policies.get('ServiceIdentity', `k8s-${CLUSTER}-${shop}-web`) === undefined ? true : undefined));
    t.pass('and the ServiceIdentity is deleted');
  });

  await t.test('deleting the Service removes it from Consul', async (t) => {
    await kube.discovery.replaceNamespacedEndpointSlice({
      name: 'web-abc',
      namespace: shop,
      body: {
        ...(await kube.discovery.readNamespacedEndpointSlice({ name: 'web-abc', namespace: shop })),
        endpoints: podSlice(shop, 'web', 'web-abc', [{ pod: web1 }]).endpoints,
      },
    });
    await waitFor(async () => ((await syncedInstances(consul.httpAddr, 'web')).length === 1 ? true : undefined));
    const deleted = Date.now();
    await kube.core.deleteNamespacedService({ name: 'web', namespace: shop });
    await waitFor(async () => ((await syncedInstances(consul.httpAddr, 'web')).length === 0 ? true : undefined));
    t.comment(`deleted Service gone from Consul after ${Date.now() - deleted} ms`);
    t.pass('the Service is gone from Consul');
  });

  await t.test('annotations opt in and out', async (t) => {
    const operatorName = `k8s-${CLUSTER}-${other}-api`;
    cp.cp.policies.apply(
      [
        {
          apiVersion: 'mesh.v1',
          kind: 'ServiceIdentity',
          metadata: { name: operatorName },
          spec: { service: 'api', namespace: other, allowedIdentities: [`spiffe://${td}/ns/${other}/sa/api`] },
        },
      ],
      'operator',
    );
    await kube.serviceAccount(other, 'api');
    const api = await kube.runningPod(other, 'api-1', { serviceAccount: 'api', podIP: '10.244.2.1' });
    await kube.core.createNamespacedService({ namespace: other, body: meshService(other, 'api', { 'vm-mesh.io/sync': 'true' }) });
    await kube.discovery.createNamespacedEndpointSlice({ namespace: other, body: podSlice(other, 'api', 'api-1', [{ pod: api }]) });
    await kube.core.createNamespacedService({ namespace: shop, body: meshService(shop, 'hidden', { 'vm-mesh.io/sync': 'false' }) });
    await kube.discovery.createNamespacedEndpointSlice({ namespace: shop, body: podSlice(shop, 'hidden', 'hidden-1', [{ pod: web1 }]) });
    const synced = await waitFor(async () => {
      const list = await syncedInstances(consul.httpAddr, 'api');
      return list.length === 1 ? list : undefined;
    });
    t.equal(synced[0]?.meta.mesh_spiffe_id, `spiffe://${td}/ns/${other}/sa/api`, 'an annotated Service of another namespace is synced');
    const report = await waitFor(async () => {
      const s = cp.cp.kubeSync?.status().toConsul;
      return s !== undefined && s.registrations === 1 && s.conflicts.length > 0 ? s : undefined;
    });
    t.equal(report.services, 1, 'synced: other/api (annotated); shop/hidden (annotated false) is not');
    t.same(report.conflicts, [operatorName], 'the ServiceIdentity name held by an operator resource is a conflict');
    const held = cp.cp.policies.get('ServiceIdentity', operatorName);
    t.equal(held?.updatedBy, 'operator', 'the operator resource is left alone');
    t.equal(held?.version, 1);
    t.same(await syncedInstances(consul.httpAddr, 'hidden'), [], 'a Service annotated sync=false stays out of Consul');
    t.same(await syncedInstances(consul.httpAddr, 'legacy'), [], 'a Service of a namespace not allowed stays out');
  });

  await t.test('Consul -> Kubernetes: VM mesh services become selector-less Services with EndpointSlices', async (t) => {
    const vm1 = vmNode(consul.httpAddr, 'vm-1', '192.0.2.11');
    const vm2 = vmNode(consul.httpAddr, 'vm-2', '192.0.2.12');
    await registerVmWorkload(vm1, { service: 'payments', node: 'vm-1', address: '192.0.2.11', port: 9090, meshPort: 15001 });
    await registerVmWorkload(vm2, { service: 'payments', node: 'vm-2', address: '192.0.2.12', port: 9090, meshPort: 15001 });
    await registerVmWorkload(vm1, { service: 'billing', node: 'vm-1', address: '192.0.2.11', port: 9191, meshPort: 15002 });
    const slice = await waitFor(async () => {
      const list = await kube.discovery.listNamespacedEndpointSlice({
        namespace: vms,
        labelSelector: 'kubernetes.io/service-name=payments',
      });
      const s = list.items[0];
      return s !== undefined && s.endpoints?.length === 2 ? s : undefined;
    });
    t.same(
      slice.endpoints?.map((e) => e.addresses[0]),
      ['192.0.2.11', '192.0.2.12'],
      'one endpoint per VM instance',
    );
    t.same(
      slice.ports?.map((p) => [p.name, p.port]),
      [
        ['app', 9090],
        ['mesh', 15001],
      ],
    );
    t.equal(slice.metadata?.labels?.['app.kubernetes.io/managed-by'], 'vm-mesh-k8s-sync', 'ownership label');
    t.equal(slice.metadata?.labels?.['endpointslice.kubernetes.io/managed-by'], 'k8s-sync.vm-mesh.io');
    const svc = await kube.core.readNamespacedService({ name: 'payments', namespace: vms });
    t.equal(svc.spec?.selector, undefined, 'a selector-less Service');
    t.equal(svc.spec?.clusterIP, 'None', 'headless: pods resolve the endpoints');
    t.equal(svc.metadata?.labels?.['vm-mesh.io/sync-cluster'], CLUSTER);
    const mirrored = await kube.core.listNamespacedService({ namespace: vms });
    t.notOk(
      mirrored.items.some((s) => s.metadata?.name === 'api' || s.metadata?.name === 'web'),
      'services synced from Kubernetes are not mirrored back',
    );
    const status = await waitFor(async () => {
      const s = cp.cp.kubeSync?.status().fromConsul;
      return s?.conflicts.includes('Service billing') ? s : undefined;
    });
    t.same(status.conflicts, ['Service billing'], 'the name held by a Service the sync did not create is a conflict, left alone');

    const critical = Date.now();
    await registerVmWorkload(vm2, {
      service: 'payments',
      node: 'vm-2',
      address: '192.0.2.12',
      port: 9090,
      meshPort: 15001,
      health: 'critical',
    });
    await waitFor(async () => {
      const list = await kube.discovery.listNamespacedEndpointSlice({
        namespace: vms,
        labelSelector: 'kubernetes.io/service-name=payments',
      });
      const ep = list.items[0]?.endpoints?.find((e) => e.addresses[0] === '192.0.2.12');
      return ep?.conditions?.ready === false ? true : undefined;
    });
    t.comment(`a VM instance's check going critical: its endpoint not ready after ${Date.now() - critical} ms`);
    t.pass('an instance whose Consul check fails is a not-ready endpoint');

    await vm2.deregister('payments-vm-2');
    await waitFor(async () => {
      const list = await kube.discovery.listNamespacedEndpointSlice({
        namespace: vms,
        labelSelector: 'kubernetes.io/service-name=payments',
      });
      return list.items[0]?.endpoints?.length === 1 ? true : undefined;
    });
    t.pass('a deregistered VM workload leaves the EndpointSlice');
    const gone = Date.now();
    await vm1.deregister('payments-vm-1');
    await waitFor(async () => {
      const list = await kube.discovery.listNamespacedEndpointSlice({
        namespace: vms,
        labelSelector: 'kubernetes.io/service-name=payments',
      });
      return list.items.length === 0 ? true : undefined;
    });
    t.comment(`last VM workload deregistered: EndpointSlice deleted after ${Date.now() - gone} ms`);
    await waitFor(async () => {
      const list = await kube.core.listNamespacedService({ namespace: vms, fieldSelector: 'metadata.name=payments' });
      return list.items.length === 0 ? true : undefined;
    });
    t.pass('and its Service with it');
  });

  await t.test('objects the sync did not create are left byte-for-byte alone', async (t) => {
    // Several full reconciles of both directions since the snapshot (resync 1s).
    const since = Date.now();
    await waitFor(
      async () => {
        const s = cp.cp.kubeSync?.status();
        return (s?.toConsul?.atMs ?? 0) > since + 1500 && (s?.fromConsul?.atMs ?? 0) > since + 1500 ? true : undefined;
      },
      { timeoutMs: 20_000 },
    );
    t.equal(await untouched(), before, 'Services and EndpointSlices of others: identical, resourceVersion included');
    const nodes = (await consul.api<Array<{ Node: string }>>('/v1/catalog/nodes')).map((n) => n.Node);
    t.ok(nodes.includes(SYNC_NODE), 'the synthetic node of the cluster');
    t.equal(
      await noteEntry(),
      noteBefore,
      'a registration on the synthetic node that is not the sync own: identical, ModifyIndex included',
    );
  });
});
