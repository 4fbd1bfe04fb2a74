/**
 * Network-namespace hosts as the "pods" of a Kubernetes Service, for the
 * end-to-end tests and `npm run demo -- --k8s`: each host gets a Pod object
 * (Running and Ready, podIP = the host's address, data only), a pod-bound
 * service-account token in a 0600 file its agent reads, and the Service's
 * EndpointSlice lists the hosts with a targetRef to their Pods, written as the
 * controller manager would (this cluster has none), labelled as the test's.
 */
import { chmod, mkdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type * as k8s from '@kubernetes/client-node';
import { type KubeHelpers, TEST_SLICE_MANAGER } from './kube.js';
import type { TestHost } from './netns.js';

export interface PodHost {
  readonly host: TestHost;
  readonly namespace: string;
  readonly name: string;
  readonly serviceAccount: string;
  readonly pod: k8s.V1Pod;
  /** The projected token as a kubelet writes it: a file only its agent reads (0600 in a 0700 folder). */
  readonly tokenFile: string;
  /** A fresh token for the same pod (as the kubelet rotates it), written atomically over tokenFile. */
  refreshToken(expirationSeconds?: number): Promise<void>;
}

export interface PodHostOptions {
  namespace: string;
  name: string;
  serviceAccount: string;
  /** The token's audience (the control plane's attestation audience: default the trust domain). */
  audience: string;
  /** Where the pod's files go (token/). */
  dir: string;
  labels?: Record<string, string>;
}

/** A Pod of `host` and its token file (the service account must exist). */
export async function podOnHost(kube: KubeHelpers, host: TestHost, o: PodHostOptions): Promise<PodHost> {
  const pod = await kube.runningPod(o.namespace, o.name, { serviceAccount: o.serviceAccount, podIP: host.address, labels: o.labels ?? {} });
  const tokenDir = path.join(o.dir, 'token');
  await mkdir(tokenDir, { recursive: true, mode: 0o700 });
  await chmod(tokenDir, 0o700);
  const tokenFile = path.join(tokenDir, 'token');
  const refreshToken = async (expirationSeconds = 3600) => {
    const token = await kube.podToken(o.namespace, pod, [o.audience], expirationSeconds);
    const temp = `${tokenFile}.tmp`;
    await writeFile(temp, token, { mode: 0o600 });
    await rename(temp, tokenFile);
  };
  await refreshToken();
  return { host, namespace: o.namespace, name: o.name, serviceAccount: o.serviceAccount, pod, tokenFile, refreshToken };
}

export interface ServicePort {
  name: string;
  port: number;
}

/**
 * A selector-less Service and the one EndpointSlice of its pods (ready, with a
 * targetRef to each Pod), labelled kubernetes.io/service-name and managed by
 * TEST_SLICE_MANAGER. `annotations` go on the Service (the sync's opt-in).
 */
export async function serviceOfPods(
  kube: KubeHelpers,
  o: { namespace: string; name: string; ports: ServicePort[]; pods: PodHost[]; annotations?: Record<string, string> },
): Promise<{ service: k8s.V1Service; slice: k8s.V1EndpointSlice }> {
  const service = await kube.core.createNamespacedService({
    namespace: o.namespace,
    body: {
      metadata: { name: o.name, annotations: o.annotations ?? {} },
      spec: { ports: o.ports.map((p) => ({ name: p.name, port: p.port, targetPort: p.port, protocol: 'TCP' })) },
    },
  });
  const slice = await kube.discovery.createNamespacedEndpointSlice({
    namespace: o.namespace,
    body: {
      metadata: {
        name: `${o.name}-pods`,
        labels: { 'kubernetes.io/service-name': o.name, 'endpointslice.kubernetes.io/managed-by': TEST_SLICE_MANAGER },
      },
      addressType: 'IPv4',
      ports: o.ports.map((p) => ({ name: p.name, port: p.port, protocol: 'TCP' })),
      endpoints: o.pods.map((p) => ({
        addresses: [p.host.address],
        conditions: { ready: true, serving: true, terminating: false },
        targetRef: { kind: 'Pod', namespace: p.namespace, name: p.name, uid: p.pod.metadata?.uid ?? '' },
      })),
    },
  });
  return { service, slice };
}

/** A test's folder for one pod's files. */
export async function podDir(base: string, name: string): Promise<string> {
  const dir = path.join(base, 'pods', name);
  await mkdir(dir, { recursive: true });
  return dir;
}
