/**
 * One mesh of Kubernetes pods and a VM, across network namespaces, for
 * test/privileged/kube-vm-netns.test.ts and `npm run demo -- --k8s`
 * (scripts/demo-k8s.ts). Four hosts on one veth segment (netns.ts):
 * - infra: Consul dev agent and `mesh-controlplane run` with a `kubernetes:`
 *   section (catalog sync both ways, pod attestation); the API server of the
 *   root namespace's loopback is bridged to infra's 127.0.0.1 (kube-bridge.ts);
 * - pod-a, pod-b: the pods of the Kubernetes Service `orders` (namespace
 *   `kubeNs`, service account `orders`): each runs the workload `orders` (an
 *   echo app answering with its pod's name, orders-a or orders-b) and a
 *   mesh-agent in kubernetes mode holding its pod-bound token (no join);
 *   orders-b's agent also runs the transparent proxy (iptables inside its
 *   namespace only, Envoy as ENVOY_UID), so its app can call the address of a
 *   Kubernetes Service's EndpointSlice and still go through the mesh;
 * - vm: a VM joined with a token, running the echo app `billing` (namespace
 *   `vms`) and its mesh-agent.
 * billing calls orders through its upstream port (ORDERS_LOCAL), and each pod
 * calls billing through its own (BILLING_LOCAL). The apps answer with the
 * peer SPIFFE ID their Envoy saw. stop() stops every process by pid (agents
 * first), closes the bridge and removes the namespaces.
 */
import { chmod, copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type * as k8s from '@kubernetes/client-node';
import type { LocalKube } from '../../scripts/kube-local.js';
import { startAgentProcess } from './agent-process.js';
import { childKeeper, type ManagedChild } from './child.js';
import type { KubeHelpers } from './kube.js';
import { bridgeLoopbackInto, type KubeBridge } from './kube-bridge.js';
import { type PodHost, podDir, podOnHost, serviceOfPods } from './kube-pod-hosts.js';
import type { CallTally } from './mesh-calls.js';
import { createNetwork, type TestHost, type TestNetwork } from './netns.js';
import { CONSUL_PORTS, dist, httpIn, meshctl, type NetnsPeers, startNetnsPeers } from './netns-peers.js';
import { tools } from './tools.js';
import { ENVOY_UID, echoIn, xfccUri } from './tproxy-world.js';
import { waitFor } from './wait.js';

export const TD = 'example.org';
export const CLUSTER = 'demo';
/** The VM workload's namespace (its SPIFFE ID is spiffe://<td>/ns/vms/sa/billing). */
export const VM_NS = 'vms';
/** Where the sync writes the Services of the mesh's VM services. */
export const VM_SERVICES_NS = 'mesh-vms';
export const APP_PORT = 8080;
export const MESH_PORT = { orders: 21001, billing: 21002 } as const;
/** billing's local port for orders; the pods' local port for billing. */
export const ORDERS_LOCAL = 9001;
export const BILLING_LOCAL = 9002;
export const ENVOY_ADMIN = 15000;
export const STATUS_PORT = 15100;
/** The pod whose agent captures traffic (transparentProxy, Envoy as ENVOY_UID): its app calls the addresses Kubernetes gives it. */
export const TPROXY_POD = 'orders-b';

export const spiffe = (ns: string, sa: string) => `spiffe://${TD}/ns/${ns}/sa/${sa}`;
export const BILLING_ID = spiffe(VM_NS, 'billing');

export interface MeshHost {
  readonly host: TestHost;
  readonly name: string;
  readonly dir: string;
  readonly configFile: string;
  readonly agent: ManagedChild;
  /** GET /status of the agent, from inside the host. */
  status<T = Record<string, unknown>>(): Promise<T>;
  /** n requests to 127.0.0.1:localPort (an upstream port) from inside the host, tallied by the app that answered. */
  calls(localPort: number, n: number): Promise<CallTally>;
}

export interface KubeVmWorld {
  readonly net: TestNetwork;
  readonly base: string;
  readonly kube: KubeVmWorldOptions['kube'];
  readonly infra: TestHost;
  readonly peers: NetnsPeers;
  /** The namespace of the orders pods. */
  readonly kubeNs: string;
  readonly ordersId: string;
  readonly pods: readonly PodHost[];
  readonly podAgents: readonly MeshHost[];
  readonly vm: MeshHost;
  /** The control plane's config file (controlplane.yaml with the kubernetes section). */
  readonly cpConfigFile: string;
  stop(): Promise<ManagedChild[]>;
}

export interface KubeVmWorldOptions {
  /** An API server on the root namespace's loopback (startKube in tests, startLocalKube in the demo). */
  readonly kube: Pick<LocalKube, 'url' | 'kubeconfig'> & KubeHelpers;
  readonly prefix?: string;
  readonly progress?: (line: string) => void;
}

/** The `kubernetes:` section of the control plane's config: the sync both ways, SVIDs for the pods of kubeNs/orders. */
export function kubernetesSection(kubeconfig: string, kubeNs: string, consulAddr: string): Record<string, unknown> {
  return {
    kubeconfig,
    cluster: CLUSTER,
    sync: {
      consul: { address: consulAddr },
      toConsul: { namespaces: [kubeNs] },
      fromConsul: { namespace: VM_SERVICES_NS },
    },
    attestation: { allow: [{ namespace: kubeNs, serviceAccount: 'orders' }] },
  };
}

/** A workload file whose upstreams name the namespace of their servers. */
export function workloadFile(w: {
  name: string;
  namespace: string;
  upstreams?: Array<{ service: string; namespace: string; localPort: number }>;
}): string {
  const lines = [
    `name: ${w.name}`,
    `namespace: ${w.namespace}`,
    `port: ${APP_PORT}`,
    `meshPort: ${MESH_PORT[w.name as keyof typeof MESH_PORT]}`,
    'protocol: http',
  ];
  const ups = w.upstreams ?? [];
  if (ups.length > 0)
    lines.push(
      `upstreams: [${ups.map((u) => `{ service: ${u.service}, namespace: ${u.namespace}, localPort: ${u.localPort} }`).join(', ')}]`,
    );
  return `${lines.join('\n')}\n`;
}

/** GET url with curl inside host; the echo app's name and the peer URI it saw, or undefined without a 200 from an app. */
export async function echoFrom(host: TestHost, url: string): Promise<{ app: string; peer?: string } | undefined> {
  const answer = await echoIn(host, url);
  const peer = answer === undefined ? undefined : xfccUri(answer.xfcc);
  return answer === undefined ? undefined : peer === undefined ? { app: answer.app } : { app: answer.app, peer };
}

/** The address and app port of a Service's EndpointSlice, as a pod's app finds it (kube-proxy and DNS read the same). */
export function sliceTarget(slice: k8s.V1EndpointSlice): { address: string; port: number } | undefined {
  const address = slice.endpoints?.find((e) => e.conditions?.ready === true)?.addresses[0];
  const port = slice.ports?.find((p) => p.name === 'app')?.port;
  return address === undefined || port === undefined || port === null ? undefined : { address, port };
}

export async function startKubeVmWorld(options: KubeVmWorldOptions): Promise<KubeVmWorld> {
  const { kube } = options;
  const progress = options.progress ?? (() => {});
  const { envoy } = await tools();
  const base = await mkdtemp(path.join(os.tmpdir(), options.prefix ?? 'mesh-kube-vm-'));
  // The Envoy of the transparent-proxy pod runs as ENVOY_UID: it must reach its binary (the provisioned one is under /root) and its folder.
  await chmod(base, 0o755);
  const envoyBinary = path.join(base, 'bin', 'envoy');
  await mkdir(path.dirname(envoyBinary), { mode: 0o755 });
  await copyFile(envoy.path, envoyBinary);
  await chmod(envoyBinary, 0o755);
  const { keep, stopAll } = childKeeper();
  let net: TestNetwork | undefined;
  let bridge: KubeBridge | undefined;
  const stop = async () => {
    const stopped = await stopAll();
    await bridge?.close().catch(() => undefined);
    await net?.remove().catch(() => undefined);
    await rm(base, { recursive: true, force: true });
    return stopped;
  };
  try {
    net = await createNetwork(4);
    const [infra, podA, podB, vmHost] = net.hosts as [TestHost, TestHost, TestHost, TestHost];
    const apiPort = Number(new URL(kube.url).port);
    bridge = await bridgeLoopbackInto(infra, apiPort, base);
    keep(bridge.child);
    progress(`bridged  the API server ${kube.url} into ${infra.name} (${infra.netns}) on the same address`);

    // Kubernetes: the namespace, the service account, one Pod per pod host with its token file, the Service and its EndpointSlice.
    const kubeNs = await kube.namespace('shop');
    await kube.core.createNamespace({ body: { metadata: { name: VM_SERVICES_NS } } });
    await kube.serviceAccount(kubeNs, 'orders');
    const pods: PodHost[] = [];
    for (const [i, host] of [podA, podB].entries()) {
      const name = `orders-${'ab'[i]}`;
      pods.push(
        await podOnHost(kube, host, {
          namespace: kubeNs,
          name,
          serviceAccount: 'orders',
          audience: TD,
          dir: await podDir(base, name),
          labels: { app: 'orders' },
        }),
      );
    }
    await serviceOfPods(kube, {
      namespace: kubeNs,
      name: 'orders',
      ports: [
        { name: 'http', port: APP_PORT },
        { name: 'mesh', port: MESH_PORT.orders },
      ],
      pods,
      annotations: { 'vm-mesh.io/protocol': 'http' },
    });
    progress(
      `created  namespace ${kubeNs}: service account orders, pods ${pods.map((p) => `${p.name} (${p.host.address})`).join(', ')}, Service orders and its EndpointSlice`,
    );

    // infra: Consul and the control plane with the kubernetes section.
    const cpConfigFile = path.join(base, 'controlplane.json');
    const consulAddr = `${infra.address}:${CONSUL_PORTS.http}`;
    await writeFile(cpConfigFile, JSON.stringify({ kubernetes: kubernetesSection(kube.kubeconfig, kubeNs, consulAddr) }, null, 2));
    const peers = await startNetnsPeers(infra, base, TD, keep, { controlplaneArgs: ['--config', cpConfigFile] });
    progress(`started  ${infra.name} ${infra.address}: Consul dev agent and mesh-controlplane (kubernetes sync and attestation on)`);

    const startApp = async (host: TestHost, name: string) => {
      const app = keep(host.spawn(process.execPath, [dist('test', 'support', 'echo-app-main.js'), name, String(APP_PORT)]));
      await waitFor(async () => (app.output().includes('listening') ? true : undefined), { what: `app ${name} in ${host.name}` });
    };
    const meshHost = async (
      host: TestHost,
      name: string,
      dir: string,
      config: Record<string, unknown>,
      workload: string,
    ): Promise<MeshHost> => {
      const workloadsDir = path.join(dir, 'workloads.d');
      const dataDir = path.join(dir, 'data');
      await mkdir(workloadsDir, { recursive: true });
      await writeFile(path.join(workloadsDir, 'app.yaml'), workload);
      const configFile = path.join(dir, 'agent.json');
      const full = {
        nodeName: name,
        trustDomain: TD,
        dataDir,
        workloadsDir,
        advertiseAddress: host.address,
        consul: { address: peers.consulAddr, retryInitial: '100ms', retryMax: '1s', syncInterval: '1s', watchWait: '10s' },
        envoy: { binary: envoyBinary, adminPort: ENVOY_ADMIN, concurrency: 1, drainTime: '1s' },
        status: { listen: `127.0.0.1:${STATUS_PORT}` },
        ...config,
      };
      await writeFile(configFile, JSON.stringify(full, null, 2));
      const agent = keep(startAgentProcess(configFile, host.spawn));
      const status = async <T>() => JSON.parse((await httpIn(host, `http://127.0.0.1:${STATUS_PORT}/status`)).body) as T;
      await waitFor(
        async () => {
          if (agent.exited()) throw new Error(`mesh-agent ${name} in ${host.name} exited:\n${agent.output().slice(-3000)}`);
          return (await status().catch(() => undefined)) === undefined ? undefined : true;
        },
        { timeoutMs: 60_000, what: `mesh-agent ${name} in ${host.name} to serve its status` },
      );
      const calls = async (localPort: number, n: number) => {
        const r = await host.exec(process.execPath, [dist('test', 'support', 'mesh-calls-main.js'), String(localPort), String(n)], {
          timeoutMs: 6_000 * n + 10_000,
        });
        if (r.code !== 0) throw new Error(`mesh-calls in ${host.name} exited ${r.code}: ${r.stderr}`);
        return JSON.parse(r.stdout) as CallTally;
      };
      return { host, name, dir, configFile, agent, status, calls };
    };

    // The pods: the app and a mesh-agent in kubernetes mode with the pod's token file.
    const podAgents: MeshHost[] = [];
    for (const pod of pods) {
      await startApp(pod.host, pod.name);
      const dir = path.dirname(path.dirname(pod.tokenFile));
      const config = {
        controlPlane: { address: peers.cp.address, caBundle: peers.bundleFile },
        kubernetes: { mode: 'sidecar', tokenFiles: [pod.tokenFile] },
        ...(pod.name === TPROXY_POD
          ? {
              envoy: {
                binary: envoyBinary,
                adminPort: ENVOY_ADMIN,
                concurrency: 1,
                drainTime: '1s',
                user: String(ENVOY_UID),
                group: String(ENVOY_UID),
              },
              transparentProxy: { enabled: true, checkInterval: '1s' },
            }
          : {}),
      };
      const workload = workloadFile({
        name: 'orders',
        namespace: kubeNs,
        upstreams: [{ service: 'billing', namespace: VM_NS, localPort: BILLING_LOCAL }],
      });
      podAgents.push(await meshHost(pod.host, `pod-${pod.name}`, dir, config, workload));
    }
    progress(
      `started  mesh-agent in kubernetes mode on ${pods.map((p) => p.host.name).join(' and ')} (pod-bound tokens, no join; ${TPROXY_POD} with the transparent proxy)`,
    );

    // The VM: joined with a token allowed only billing's ID.
    await startApp(vmHost, 'billing');
    const vmDir = path.join(base, 'vm');
    const dataDir = path.join(vmDir, 'data');
    await mkdir(vmDir, { recursive: true });
    const token = (await meshctl(['token', 'create', '--data-dir', peers.cpDir, '--node', 'vm-billing', '--allow', BILLING_ID])).trim();
    const joinArgs = ['join', '--controlplane', peers.cp.address, '--token', token, '--ca-bundle', peers.bundleFile, '--data-dir', dataDir];
    const joined = await vmHost.exec(process.execPath, [dist('agent', 'main.js'), ...joinArgs], { timeoutMs: 30_000 });
    if (joined.code !== 0) throw new Error(`mesh-agent join in ${vmHost.name} exited ${joined.code}: ${joined.stderr}`);
    const vm = await meshHost(
      vmHost,
      'vm-billing',
      vmDir,
      { controlPlane: { address: peers.cp.address, caBundle: peers.bundleFile } },
      workloadFile({ name: 'billing', namespace: VM_NS, upstreams: [{ service: 'orders', namespace: kubeNs, localPort: ORDERS_LOCAL }] }),
    );
    progress(`started  mesh-agent on ${vmHost.name} ${vmHost.address} (VM, joined as vm-billing) with billing`);
    return { net, base, kube, infra, peers, kubeNs, ordersId: spiffe(kubeNs, 'orders'), pods, podAgents, vm, cpConfigFile, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
