/**
 * The catalog sync survives its peers going away: the API server restarted
 * in the middle of changes (the watches resume from their resourceVersion or
 * relist), Consul restarted with empty state (the next reconcile registers
 * everything again) and the sync itself restarted after a Service was
 * deleted while it was down (the relist and reconcile deregister it).
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { restartableConsul } from '../support/consul.js';
import { spawnControlPlane } from '../support/controlplane.js';
import { startKube } from '../support/kube.js';
import {
  CLUSTER,
  meshService,
  podSlice,
  registerVmWorkload,
  startSyncingControlPlane,
  syncedInstances,
  vmNode,
} from '../support/kube-sync.js';
import { tempDir } from '../support/temp-dir.js';
import { waitFor } from '../support/wait.js';

t.setTimeout(300_000);

t.test('the sync survives restarts of the API server, of Consul and of itself', async (t) => {
  const kube = await startKube(t);
  const consul = await restartableConsul();
  await consul.start();
  t.teardown(() => consul.stop());
  const shop = await kube.namespace('shop');
  const vms = await kube.namespace('vms');
  const dataDir = await tempDir(t, 'mesh-cp-');
  let cp = await startSyncingControlPlane(t, kube, consul.httpAddr, { namespaces: [shop], fromNamespace: vms, dataDir });

  await kube.serviceAccount(shop, 'app');
  const pods = [];
  for (let i = 1; i <= 4; i++) pods.push(await kube.runningPod(shop, `p-${i}`, { serviceAccount: 'app', podIP: `10.244.3.${i}` }));
  const [p1, p2, p3, p4] = pods as [(typeof pods)[0], (typeof pods)[0], (typeof pods)[0], (typeof pods)[0]];
  for (const name of ['a', 'b']) await kube.core.createNamespacedService({ namespace: shop, body: meshService(shop, name) });
  await kube.discovery.createNamespacedEndpointSlice({ namespace: shop, body: podSlice(shop, 'a', 'a-1', [{ pod: p1 }, { pod: p2 }]) });
  await kube.discovery.createNamespacedEndpointSlice({ namespace: shop, body: podSlice(shop, 'b', 'b-1', [{ pod: p3 }]) });
  const count = async (service: string) => (await syncedInstances(consul.httpAddr, service)).length;
  const counts = async () => [await count('a'), await count('b'), await count('c')];
  await waitFor(async () => ((await counts()).join() === '2,1,0' ? true : undefined));
  t.pass('a (2 endpoints) and b (1) are in Consul');

  await t.test('API server restarted in the middle of changes: nothing is lost', async (t) => {
    const errorsBefore = cp.cp.kubeSync?.status().errors ?? 0;
    const listsBefore = cp.cp.kubeSync?.status().toConsul?.lists ?? 0;
    // A change right before the API server goes away: the sync may or may not have seen it.
    await kube.core.createNamespacedService({ namespace: shop, body: meshService(shop, 'c') });
    await kube.stopApiserver();
    await waitFor(async () => ((cp.cp.kubeSync?.status().errors ?? 0) > errorsBefore ? true : undefined), {
      what: 'the sync to notice the API server is gone',
    });
    await kube.startApiserver();
    // Changes while the sync is still reconnecting (in its backoff).
    await kube.discovery.createNamespacedEndpointSlice({ namespace: shop, body: podSlice(shop, 'c', 'c-1', [{ pod: p4 }]) });
    await kube.core.deleteNamespacedService({ name: 'b', namespace: shop });
    const a = await kube.discovery.readNamespacedEndpointSlice({ name: 'a-1', namespace: shop });
    await kube.discovery.replaceNamespacedEndpointSlice({
      name: 'a-1',
      namespace: shop,
      body: { ...a, endpoints: podSlice(shop, 'a', 'a-1', [{ pod: p1 }, { pod: p2 }, { pod: p3 }]).endpoints },
    });
    const restarted = Date.now();
    await waitFor(async () => ((await counts()).join() === '3,0,1' ? true : undefined), { timeoutMs: 30_000 });
    const status = cp.cp.kubeSync?.status();
    t.comment(
      `after the API server restart: converged ${Date.now() - restarted} ms after the last change; ${(status?.toConsul?.lists ?? 0) - listsBefore} relists (a 410 or a failed watch relists)`,
    );
    t.pass('a has its new endpoint, b is gone, c appeared');
  });

  await t.test('Consul restarted with empty state: the registrations come back', async (t) => {
    const vm = vmNode(consul.httpAddr, 'vm-1', '192.0.2.21');
    await registerVmWorkload(vm, { service: 'ledger', node: 'vm-1', address: '192.0.2.21', port: 7070, meshPort: 15001 });
    await waitFor(async () => {
      const list = await kube.discovery.listNamespacedEndpointSlice({ namespace: vms, labelSelector: 'kubernetes.io/service-name=ledger' });
      return list.items.length === 1 ? true : undefined;
    });
    await consul.stop();
    await consul.start();
    const back = Date.now();
    await waitFor(async () => ((await counts()).join() === '3,0,1' ? true : undefined), { timeoutMs: 30_000 });
    t.comment(`Consul restarted: registrations back after ${Date.now() - back} ms (resync 1s)`);
    t.pass('a and c are registered again');
    // The VM agent registers again too (as mesh-agent does after a Consul restart); its EndpointSlice follows.
    await registerVmWorkload(vm, { service: 'ledger', node: 'vm-1', address: '192.0.2.21', port: 7070, meshPort: 15001 });
    await waitFor(async () => {
      const list = await kube.discovery.listNamespacedEndpointSlice({ namespace: vms, labelSelector: 'kubernetes.io/service-name=ledger' });
      return list.items[0]?.endpoints?.length === 1 ? true : undefined;
    });
    t.pass('the VM service EndpointSlice is there');
  });

  await t.test('a Service deleted while the sync was down is deregistered when it starts', async (t) => {
    t.ok(cp.cp.policies.get('ServiceIdentity', `k8s-${CLUSTER}-${shop}-a`), 'a has its ServiceIdentity before the stop');
    await cp.stop();
    await kube.core.deleteNamespacedService({ name: 'a', namespace: shop });
    t.equal(await count('a'), 3, 'Consul still holds a while the sync is down');
    cp = await startSyncingControlPlane(t, kube, consul.httpAddr, { namespaces: [shop], fromNamespace: vms, dataDir });
    await waitFor(async () => ((await counts()).join() === '0,0,1' ? true : undefined), { timeoutMs: 30_000 });
    t.pass('the restarted sync relisted and deregistered a');
    t.equal(cp.cp.policies.get('ServiceIdentity', `k8s-${CLUSTER}-${shop}-a`), undefined, 'and deleted its ServiceIdentity');
    t.ok(cp.cp.policies.get('ServiceIdentity', `k8s-${CLUSTER}-${shop}-c`), 'c keeps its ServiceIdentity');
  });
  await t.test('mesh-controlplane run with kubernetes.sync, killed with SIGKILL and started again, reconciles', async (t) => {
    await cp.stop();
    const dir = await tempDir(t, 'mesh-cp-proc-');
    const configFile = path.join(dir, 'controlplane.json');
    await writeFile(
      configFile,
      JSON.stringify({
        dataDir: path.join(dir, 'data'),
        trustDomain: 'example.org',
        kubernetes: {
          kubeconfig: kube.kubeconfig,
          cluster: CLUSTER,
          sync: { consul: { address: consul.httpAddr }, toConsul: { namespaces: [shop] }, fromConsul: { namespace: vms }, resync: '1s' },
        },
      }),
    );
    const spawn = () => spawnControlPlane(path.join(dir, 'data'), 'example.org', 0, ['--config', configFile]);
    let proc = await spawn();
    t.teardown(() => proc.child.stop());
    await waitFor(async () => (proc.child.output().includes('catalog sync started') ? true : undefined));
    t.pass('the sync starts inside mesh-controlplane run (the built program)');
    await kube.core.createNamespacedService({ namespace: shop, body: meshService(shop, 'd') });
    await kube.discovery.createNamespacedEndpointSlice({ namespace: shop, body: podSlice(shop, 'd', 'd-1', [{ pod: p1 }]) });
    await waitFor(async () => ((await count('d')) === 1 ? true : undefined));
    process.kill(proc.child.pid, 'SIGKILL');
    await waitFor(async () => (proc.child.exited() ? true : undefined));
    await kube.core.deleteNamespacedService({ name: 'd', namespace: shop });
    t.equal(await count('d'), 1, 'Consul still holds d after the kill');
    proc = await spawn();
    await waitFor(async () => ((await count('d')) === 0 ? true : undefined), { timeoutMs: 30_000 });
    t.pass('the program started again deregistered the Service deleted while it was down');
    await proc.child.stop();
    t.match(proc.child.output(), /catalog sync stopped/, 'SIGTERM stops the sync with the control plane');
  });
});
