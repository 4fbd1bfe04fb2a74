/**
 * `npm run demo -- --k8s [--check]` (as root): VM and Kubernetes workloads in
 * one mesh. It provisions and starts a kube-apiserver and etcd on loopback
 * (provision-kube.ts, kube-local.ts), then the world of the end-to-end test
 * (test/support/kube-vm-world.ts) in network namespaces: infra (Consul and
 * mesh-controlplane with its `kubernetes:` section: catalog sync both ways and
 * SVIDs for pods from their service-account tokens), two "pods" of the
 * Kubernetes Service `orders` with mesh-agents in kubernetes mode, and a VM
 * with `billing`. It shows orders in Consul (synced from Kubernetes), billing
 * on the VM calling orders (the pods see billing's SPIFFE ID), the Service
 * billing the sync wrote into Kubernetes, and a pod calling billing (the VM
 * sees the pod's SPIFFE ID spiffe://example.org/ns/<ns>/sa/orders). Ctrl-C
 * (or --check) stops everything and removes the namespaces and files.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { waitFor } from '../lib/wait.js';
import { kubeHelpers } from '../test/support/kube.js';
import {
  BILLING_ID,
  BILLING_LOCAL,
  CLUSTER,
  echoFrom,
  type KubeVmWorld,
  ORDERS_LOCAL,
  sliceTarget,
  startKubeVmWorld,
  TPROXY_POD,
  VM_SERVICES_NS,
} from '../test/support/kube-vm-world.js';
import { httpIn, meshctl } from '../test/support/netns-peers.js';
import { startLocalKube } from './kube-local.js';
import { defaultCacheDir, firstRunNotice } from './provision.js';
import { provisionKube } from './provision-kube.js';
import { repoRoot } from './repo-root.js';
import { untilStopSignal } from './stop-signal.js';

const say = (line: string) => process.stdout.write(`${line}\n`);

export async function runK8sDemo(check: boolean): Promise<number> {
  if (process.getuid?.() !== 0) {
    process.stderr.write(
      'demo --k8s: must run as root: the pods and the VM are network namespaces (ip netns) on a veth bridge\n' +
        "(nothing is installed on the host's own network). Run it as root, e.g. `sudo npm run demo -- --k8s`.\n",
    );
    return 2;
  }
  const cacheDir = defaultCacheDir(process.env);
  const tools = await provisionKube({
    root: repoRoot(),
    cacheDir,
    progress: firstRunNotice(
      (line) => process.stderr.write(`provision: ${line}\n`),
      `first run: building kube-apiserver and etcd from their Go modules into ${cacheDir}; this takes several minutes, later runs reuse them`,
    ),
  });
  const kubeDir = await mkdtemp(path.join(os.tmpdir(), 'mesh-demo-kube-'));
  try {
    const kube = await startLocalKube({ tools, dir: kubeDir });
    try {
      say(
        `started  kube-apiserver ${tools.kubeApiserver.version} and etcd ${tools.etcd.version} on ${kube.url} (kubeconfig ${kube.kubeconfig})`,
      );
      say('creating 4 network namespaces on a veth bridge: h0 infra, h1 and h2 the pods, h3 the VM...');
      const w = await startKubeVmWorld({ kube: { ...kube, ...kubeHelpers(kube) }, prefix: 'mesh-demo-k8s-', progress: say });
      try {
        return await demo(w, kube.kubeconfig, check);
      } finally {
        await w.stop();
      }
    } finally {
      await kube.stop();
    }
  } finally {
    await rm(kubeDir, { recursive: true, force: true });
    say('stopped: agents, Envoys, control plane, Consul, kube-apiserver and etcd; namespaces and files removed');
  }
}

interface CatalogEntry {
  Node: string;
  ServiceAddress: string;
  ServiceMeta: Record<string, string>;
}

async function demo(w: KubeVmWorld, kubeconfig: string, check: boolean): Promise<number> {
  const ns = (h: { netns: string }) => `ip netns exec ${h.netns}`;
  const [podA] = w.pods;
  const podAgent = w.podAgents[0];
  if (podA === undefined || podAgent === undefined) throw new Error('the demo world has no pod');

  // 1. Kubernetes -> Consul.
  say('');
  say(`$ curl http://${w.peers.consulAddr}/v1/catalog/service/orders   (from ${w.infra.name})`);
  const catalog = async () =>
    JSON.parse((await httpIn(w.infra, `http://${w.peers.consulAddr}/v1/catalog/service/orders`)).body || '[]') as CatalogEntry[];
  // The sync's instances, on the cluster's synthetic node (the pods' agents also register theirs, each on its own node).
  const synced = async () => (await catalog()).filter((e) => e.Node === `k8s-${CLUSTER}`);
  const entries = await waitFor(async () => ((await synced()).length === w.pods.length ? synced() : undefined), {
    timeoutMs: 60_000,
    intervalMs: 250,
    what: 'the pods of orders in Consul',
  }).catch(() => [] as CatalogEntry[]);
  for (const e of entries) say(`synced   orders at ${e.ServiceAddress} on node ${e.Node}, identity ${e.ServiceMeta.mesh_spiffe_id}`);
  const syncedOk = entries.length === w.pods.length && entries.every((e) => e.ServiceMeta.mesh_spiffe_id === w.ordersId);
  if (!syncedOk) say(`FAILED   orders is not in Consul with its pods (${entries.length} instances)`);
  // Who may serve orders: the ServiceIdentity the sync keeps, from the Pods' service account.
  say('$ meshctl policy list --kind ServiceIdentity');
  process.stdout.write(
    await meshctl(['policy', 'list', '--kind', 'ServiceIdentity', '--data-dir', w.peers.cpDir]).catch((err: Error) => `${err.message}\n`),
  );

  // 2. VM -> Kubernetes.
  say('');
  say(`$ ${ns(w.vm.host)} curl http://127.0.0.1:${ORDERS_LOCAL}/   (billing on the VM calls orders through its Envoy)`);
  const toPods = await waitFor(
    async () => {
      const tally = await w.vm.calls(ORDERS_LOCAL, 4);
      return w.pods.every((p) => (tally.counts[p.name] ?? 0) > 0) ? tally : undefined;
    },
    { timeoutMs: 120_000, intervalMs: 500, what: 'billing to reach both pods of orders' },
  ).catch(() => undefined);
  const vmToKubeOk = toPods !== undefined && w.pods.every((p) => JSON.stringify(toPods.peers[p.name]) === JSON.stringify([BILLING_ID]));
  if (toPods !== undefined)
    for (const p of w.pods) say(`answer   ${p.name} (pod ${p.host.address}) saw peer ${toPods.peers[p.name]?.join(', ') ?? '-'}`);
  if (!vmToKubeOk) say(`FAILED   billing -> orders: ${JSON.stringify(toPods?.counts ?? 'no answer from both pods')}`);

  // 3. Consul -> Kubernetes -> VM.
  say('');
  const k = w.kube;
  const slices = await waitFor(
    async () => {
      const list = await k.discovery.listNamespacedEndpointSlice({
        namespace: VM_SERVICES_NS,
        labelSelector: 'kubernetes.io/service-name=billing',
      });
      return list.items.some((s) => s.endpoints?.some((e) => e.conditions?.ready === true && e.addresses.includes(w.vm.host.address)))
        ? list.items
        : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 250, what: 'the synced EndpointSlice of billing' },
  ).catch(() => []);
  for (const s of slices)
    say(
      `synced   EndpointSlice ${VM_SERVICES_NS}/${s.metadata?.name}: ${(s.endpoints ?? []).flatMap((e) => e.addresses).join(', ')} ports ${(s.ports ?? []).map((p) => `${p.name}=${p.port}`).join(', ')}`,
    );
  if (slices.length === 0) say(`FAILED   no EndpointSlice of billing in ${VM_SERVICES_NS}`);
  say(`$ ${ns(podA.host)} curl http://127.0.0.1:${BILLING_LOCAL}/   (pod ${podA.name} calls billing through its Envoy)`);
  const toVm = await waitFor(
    async () => {
      const tally = await podAgent.calls(BILLING_LOCAL, 1);
      return tally.counts.billing === 1 ? tally : undefined;
    },
    { timeoutMs: 120_000, intervalMs: 500, what: 'the pod to reach billing' },
  ).catch(() => undefined);
  say(
    toVm === undefined
      ? 'FAILED   the pod got no answer from billing'
      : `answer   billing (VM ${w.vm.host.address}) saw peer ${toVm.peers.billing?.join(', ') ?? '-'}`,
  );
  // The other pod's agent captures traffic: its app calls the address the synced EndpointSlice gives, as a pod's app does.
  const target = slices.map(sliceTarget).find((x) => x !== undefined);
  const podB = w.pods.find((p) => p.name === TPROXY_POD);
  let byService: { app: string; peer?: string } | undefined;
  if (target !== undefined && podB !== undefined) {
    const url = `http://${target.address}:${target.port}/`;
    say(`$ ${ns(podB.host)} curl ${url}   (pod ${podB.name} calls the synced Service's endpoint; its transparent proxy captures it)`);
    byService = await waitFor(async () => ((await echoFrom(podB.host, url))?.app === 'billing' ? echoFrom(podB.host, url) : undefined), {
      timeoutMs: 60_000,
      intervalMs: 500,
      what: 'the captured call to reach billing',
    }).catch(() => undefined);
    say(
      byService === undefined
        ? `FAILED   ${podB.name} got no answer from ${url}`
        : `answer   billing (VM ${w.vm.host.address}) saw peer ${byService.peer ?? '-'}`,
    );
  }
  const kubeToVmOk = toVm?.peers.billing?.[0] === w.ordersId && byService?.peer === w.ordersId;

  // The node records: the pods' from their tokens (no join), the VM's from its join token.
  say('');
  say('$ meshctl node list');
  process.stdout.write(await meshctl(['node', 'list', '--data-dir', w.peers.cpDir]).catch((err: Error) => `${err.message}\n`));

  const ok = syncedOk && vmToKubeOk && kubeToVmOk;
  if (check) {
    say(ok ? 'demo check passed' : 'demo check FAILED');
    if (!ok)
      for (const c of [w.peers.cp.child, ...w.podAgents.map((a) => a.agent), w.vm.agent])
        process.stderr.write(`--- pid ${c.pid} ---\n${c.output().slice(-3000)}\n`);
    return ok ? 0 : 1;
  }
  say('');
  say('The mesh is running. Try:');
  say(`  ${ns(w.vm.host)} curl -s http://127.0.0.1:${ORDERS_LOCAL}/`);
  say(`  ${ns(podA.host)} curl -s http://127.0.0.1:${BILLING_LOCAL}/`);
  say(`  ${ns(w.infra)} curl -s http://${w.peers.consulAddr}/v1/catalog/service/orders`);
  say(`  the Kubernetes API: ${kubeconfig}`);
  say('Press Ctrl-C to stop everything and clean up.');
  await untilStopSignal();
  say('\nstopping...');
  return 0;
}
