/**
 * VM <-> Kubernetes across network namespaces, with the real programs
 * (test/support/kube-vm-world.ts): a real kube-apiserver and etcd (startKube),
 * Consul and `mesh-controlplane run` with its `kubernetes:` section (catalog
 * sync both ways, pod attestation) on the infra host, two "pods" of the
 * Kubernetes Service `orders` as namespace hosts, each with a mesh-agent in
 * kubernetes mode holding a pod-bound token, and a VM host with `billing`.
 * - Kubernetes -> Consul: orders appears on the cluster's synthetic node with
 *   the pods' addresses and SPIFFE ID (from the Pods' service account), and
 *   the sync keeps the ServiceIdentity that lets only that account serve it.
 * - The pods' agents attested with their tokens: node records
 *   k8s.<cluster>.<ns>.<pod>, no join token.
 * - VM -> Kubernetes: billing calls orders through the mesh; both pods serve,
 *   and each saw billing's SPIFFE ID in x-forwarded-client-cert.
 * - Consul -> Kubernetes: the sync wrote the Service billing and its
 *   EndpointSlice (the VM's address) into the VMs' namespace.
 * - Kubernetes -> VM: orders-a calls billing through its upstream port, and
 *   orders-b (transparent proxy) calls the address of the synced Service's
 *   EndpointSlice; billing sees the pod's SPIFFE ID both times,
 *   spiffe://example.org/ns/<ns>/sa/orders.
 * - A pod taken out of the EndpointSlice gets no more of the VM's requests:
 *   the pods' agents leave registration to the sync (kubernetes.register: false).
 * Every process is stopped by its pid and the namespaces are removed.
 */
import t from 'tap';
import { processesWith } from '../support/child.js';
import { startKube } from '../support/kube.js';
import {
  BILLING_ID,
  BILLING_LOCAL,
  CLUSTER,
  echoFrom,
  MESH_PORT,
  ORDERS_LOCAL,
  sliceTarget,
  startKubeVmWorld,
  VM_SERVICES_NS,
} from '../support/kube-vm-world.js';
import { listNetns, privilegedSkipReason } from '../support/netns.js';
import { httpIn, meshctl } from '../support/netns-peers.js';
import { waitFor } from '../support/wait.js';

const skip = await privilegedSkipReason();
if (skip !== undefined) process.stderr.write(`# skipping privileged tests: ${skip}\n`);

/** Requests per measured phase. */
const N = 20;

interface CatalogEntry {
  Node: string;
  ServiceAddress: string;
  ServicePort: number;
  ServiceMeta: Record<string, string>;
}

t.test('VM and Kubernetes workloads in one mesh, across network namespaces', { skip: skip ?? false, timeout: 600_000 }, async (t) => {
  const kube = await startKube(t);
  const began = performance.now();
  const w = await startKubeVmWorld({ kube, prefix: 'mesh-kube-vm-test-', progress: (line) => t.comment(line) });
  /** Measured, reported (not asserted): seconds since the world was up. */
  const ready = performance.now();
  const since = () => `${((performance.now() - ready) / 1000).toFixed(1)} s after the world was up`;
  t.comment(`world up (network, bridge, Kubernetes objects, Consul, control plane, 3 agents) in ${((ready - began) / 1000).toFixed(1)} s`);
  t.teardown(() => w.stop());
  const [podA, podB] = w.pods;
  if (podA === undefined || podB === undefined) throw new Error('the world has two pods');
  const diagnostics = () =>
    [w.peers.cp.child, ...w.podAgents.map((a) => a.agent), w.vm.agent]
      .map((c) => `--- pid ${c.pid} ---\n${c.output().slice(-2500)}`)
      .join('\n');

  await t.test('Kubernetes -> Consul: orders on the synthetic node, with the pods and their SPIFFE ID', async (t) => {
    const synthetic = `k8s-${CLUSTER}`;
    const catalog = async () =>
      JSON.parse((await httpIn(w.infra, `http://${w.peers.consulAddr}/v1/catalog/service/orders`)).body || '[]') as CatalogEntry[];
    const synced = async () => (await catalog()).filter((e) => e.Node === synthetic);
    const entries = await waitFor(async () => ((await synced()).length === 2 ? synced() : undefined), {
      timeoutMs: 60_000,
      what: `the two pods of orders in Consul on ${synthetic}`,
    }).catch((err: Error) => {
      throw new Error(`${err.message}\n${diagnostics()}`);
    });
    t.comment(`both pods of orders were in Consul on the synthetic node ${since()}`);
    t.same(
      entries.map((e) => e.ServiceAddress).sort(),
      [podA.host.address, podB.host.address].sort(),
      `one instance per pod on the synthetic node ${synthetic}, at its address`,
    );
    t.same([...new Set(entries.map((e) => e.ServiceMeta.mesh_spiffe_id))], [w.ordersId], "with the pods' service account identity");
    t.same([...new Set(entries.map((e) => e.ServiceMeta.mesh_port))], [String(MESH_PORT.orders)], 'and the named mesh port');

    // Who may serve orders comes from the Kubernetes API, through the control plane: the sync's ServiceIdentity.
    const listed = JSON.parse(await meshctl(['policy', 'list', '--kind', 'ServiceIdentity', '--json', '--data-dir', w.peers.cpDir])) as {
      resources: Array<{ name: string; updatedBy: string; document: { spec: { service: string; allowedIdentities: string[] } } }>;
    };
    const kept = listed.resources.find((r) => r.document.spec.service === 'orders');
    t.same(
      kept?.document.spec.allowedIdentities,
      [w.ordersId],
      `the sync keeps ServiceIdentity ${kept?.name}: only the pods' account serves orders`,
    );
    t.equal(kept?.updatedBy, `k8s-sync:${CLUSTER}`, 'written by the sync');
  });

  await t.test("the pods' agents hold node records from their tokens, each allowed only the pod's SPIFFE ID", async (t) => {
    const nodes = JSON.parse(await meshctl(['node', 'list', '--json', '--data-dir', w.peers.cpDir])) as Array<{
      name: string;
      allow: string[];
    }>;
    const allowed = Object.fromEntries(nodes.map((n) => [n.name, n.allow]));
    for (const pod of w.pods) {
      const name = `k8s.${CLUSTER}.${w.kubeNs}.${pod.name}`;
      t.same(allowed[name], [w.ordersId], `node ${name} (no join token) may hold only the pod's SPIFFE ID`);
    }
    t.same(allowed['vm-billing'], [BILLING_ID], 'and the VM joined as vm-billing');
  });

  await t.test('VM -> Kubernetes: billing calls orders; both pods serve and see billing', async (t) => {
    await waitFor(
      async () => {
        const seen = await w.vm.calls(ORDERS_LOCAL, 4);
        return (seen.counts[podA.name] ?? 0) > 0 && (seen.counts[podB.name] ?? 0) > 0 ? true : undefined;
      },
      { timeoutMs: 120_000, what: 'billing on the VM to reach both pods of orders' },
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${diagnostics()}`);
    });
    t.comment(`billing reached both pods ${since()}`);
    const both = await w.vm.calls(ORDERS_LOCAL, N);
    t.comment(`billing -> orders, ${N} requests: ${JSON.stringify(both.counts)}`);
    t.equal((both.counts[podA.name] ?? 0) + (both.counts[podB.name] ?? 0), N, 'every request reached a pod of orders');
    t.ok((both.counts[podA.name] ?? 0) > 0 && (both.counts[podB.name] ?? 0) > 0, 'both pods served');
    t.same(both.peers[podA.name], [BILLING_ID], `${podA.name} saw billing's SPIFFE ID, presented by the VM's Envoy`);
    t.same(both.peers[podB.name], [BILLING_ID], `so did ${podB.name}`);
  });

  await t.test('Consul -> Kubernetes -> VM: the synced Service billing; a pod calls it and billing sees the pod', async (t) => {
    const slice = await waitFor(
      async () => {
        const list = await kube.discovery.listNamespacedEndpointSlice({
          namespace: VM_SERVICES_NS,
          labelSelector: 'kubernetes.io/service-name=billing',
        });
        return list.items.find((s) => s.endpoints?.some((e) => e.conditions?.ready === true && e.addresses.includes(w.vm.host.address)));
      },
      { timeoutMs: 60_000, what: `an EndpointSlice of billing in ${VM_SERVICES_NS} with the VM's address, ready` },
    );
    const service = await kube.core.readNamespacedService({ namespace: VM_SERVICES_NS, name: 'billing' });
    t.equal(service.spec?.selector, undefined, `Service ${VM_SERVICES_NS}/billing has no selector`);
    t.equal(service.metadata?.labels?.['app.kubernetes.io/managed-by'], 'vm-mesh-k8s-sync', 'and the sync owns it');
    t.ok(
      slice.ports?.some((p) => p.port === MESH_PORT.billing),
      `its EndpointSlice carries billing's mesh port (${JSON.stringify(slice.ports)})`,
    );

    const [agentA] = w.podAgents;
    if (agentA === undefined) throw new Error('the world has pod agents');
    await waitFor(async () => ((await agentA.calls(BILLING_LOCAL, 1)).counts.billing === 1 ? true : undefined), {
      timeoutMs: 120_000,
      what: `${podA.name} to reach billing on the VM`,
    }).catch((err: Error) => {
      throw new Error(`${err.message}\n${diagnostics()}`);
    });
    t.comment(`${podA.name} reached billing ${since()}`);
    const seen = await agentA.calls(BILLING_LOCAL, N);
    t.comment(`${podA.name} -> billing, ${N} requests: ${JSON.stringify(seen.counts)}`);
    t.same(seen.counts, { billing: N }, 'every request reached billing on the VM');
    t.same(seen.peers.billing, [w.ordersId], `billing saw the pod's SPIFFE ID ${w.ordersId}`);

    // orders-b finds billing the Kubernetes way: the address and app port of the synced EndpointSlice. Its agent's
    // transparent proxy captures the call into the mesh (the VM's app listens on its loopback only: no plaintext path).
    const target = sliceTarget(slice);
    if (target === undefined) throw new Error(`no ready address and app port in ${JSON.stringify(slice)}`);
    const url = `http://${target.address}:${target.port}/`;
    const byService = await waitFor(
      async () => ((await echoFrom(podB.host, url))?.app === 'billing' ? echoFrom(podB.host, url) : undefined),
      {
        timeoutMs: 60_000,
        what: `${podB.name} to reach billing at ${url}, from the synced EndpointSlice`,
      },
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${diagnostics()}`);
    });
    t.equal(byService?.peer, w.ordersId, `${podB.name} called ${url} (the synced Service's endpoint): billing saw ${w.ordersId}`);
  });

  // Kubernetes decides which pods serve: a pod taken out of the Service's EndpointSlice (not ready, scaled
  // away) must stop getting the VM's requests. The pods' agents register nothing; the sync's registrations follow the slice.
  await t.test('a pod removed from the EndpointSlice gets no more requests from the VM', async (t) => {
    const slice = await kube.discovery.readNamespacedEndpointSlice({ namespace: w.kubeNs, name: 'orders-pods' });
    slice.endpoints = slice.endpoints.filter((e) => e.targetRef?.name !== podB.name);
    await kube.discovery.replaceNamespacedEndpointSlice({ namespace: w.kubeNs, name: 'orders-pods', body: slice });
    const left = await waitFor(
      async () => {
        const tally = await w.vm.calls(ORDERS_LOCAL, 10);
        return tally.counts[podB.name] === undefined ? tally : undefined;
      },
      { timeoutMs: 30_000, what: `${podB.name} to stop getting requests` },
    );
    t.same(left.counts, { [podA.name]: 10 }, `every request goes to ${podA.name}`);
  });

  // Teardown, checked: every process by its pid, then the namespaces.
  const netId = w.net.id;
  for (const c of await w.stop()) t.ok(c.exited(), `pid ${c.pid} stopped`);
  t.same(
    processesWith(w.base).map((p) => p.args.join(' ')),
    [],
    'no process of the test (Envoy included) is left',
  );
  const left = (await listNetns()).filter((ns) => ns.startsWith(netId));
  t.same(left, [], 'no namespace of the test remains');
});
