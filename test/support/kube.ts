/**
 * startKube(): a real kube-apiserver and etcd per test (scripts/kube-local.ts),
 * stopped when the test ends, with an @kubernetes/client-node KubeConfig for
 * it and helpers for what a cluster without a controller manager lacks: a
 * namespace per test (unique name), ServiceAccounts, Pods marked Running
 * through the status subresource, EndpointSlices written by the test
 * (labelled as the test's own), and pod-bound service-account tokens.
 */
import { randomBytes } from 'node:crypto';
import * as k8s from '@kubernetes/client-node';
import type { Test } from 'tap';
import { type LocalKube, startLocalKube } from '../../scripts/kube-local.js';
import { tempDir } from './temp-dir.js';
import { kubeTools } from './tools.js';

/** The clients and helpers of a TestKube. */
export interface KubeHelpers {
  readonly kc: k8s.KubeConfig;
  readonly core: k8s.CoreV1Api;
  readonly discovery: k8s.DiscoveryV1Api;
  readonly auth: k8s.AuthenticationV1Api;
  /** A new namespace with a unique name starting with prefix. */
  namespace(prefix?: string): Promise<string>;
  serviceAccount(ns: string, name: string): Promise<k8s.V1ServiceAccount>;
  /** A Pod of the service account, Running and Ready with podIP (data only: never dialled). */
  runningPod(ns: string, name: string, o: { serviceAccount: string; podIP: string; labels?: Record<string, string> }): Promise<k8s.V1Pod>;
  /** A token of the service account bound to the pod (TokenRequest), for the audiences. */
  podToken(ns: string, pod: k8s.V1Pod, audiences: string[], expirationSeconds?: number): Promise<string>;
}

export interface TestKube extends LocalKube, KubeHelpers {}

/** The label the tests put on the EndpointSlices they write (the controller manager's are absent here). */
export const TEST_SLICE_MANAGER = 'mesh-test.example.org';

export function kubeConfigFor(kube: Pick<LocalKube, 'kubeconfig'>): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(kube.kubeconfig);
  return kc;
}

/** The clients and helpers of TestKube for an API server someone else started (a test's startKube, the demo's startLocalKube). */
export function kubeHelpers(kube: Pick<LocalKube, 'kubeconfig'>): KubeHelpers {
  const kc = kubeConfigFor(kube);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const discovery = kc.makeApiClient(k8s.DiscoveryV1Api);
  const auth = kc.makeApiClient(k8s.AuthenticationV1Api);
  return {
    kc,
    core,
    discovery,
    auth,
    async namespace(prefix = 'mesh') {
      const name = `${prefix}-${randomBytes(4).toString('hex')}`;
      await core.createNamespace({ body: { metadata: { name } } });
      return name;
    },
    serviceAccount(ns, name) {
      return core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name } } });
    },
    async runningPod(ns, name, o) {
      const pod = await core.createNamespacedPod({
        namespace: ns,
        body: {
          metadata: { name, labels: o.labels ?? {} },
          spec: {
            serviceAccountName: o.serviceAccount,
            automountServiceAccountToken: false,
            containers: [{ name: 'app', image: 'example.invalid/app:1' }],
          },
        },
      });
      const now = new Date();
      return core.replaceNamespacedPodStatus({
        name,
        namespace: ns,
        body: {
          ...pod,
          status: {
            phase: 'Running',
            podIP: o.podIP,
            podIPs: [{ ip: o.podIP }],
            conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: now }],
          },
        },
      });
    },
    async podToken(ns, pod, audiences, expirationSeconds = 3600) {
      const name = pod.spec?.serviceAccountName ?? 'default';
      const answer = await core.createNamespacedServiceAccountToken({
        name,
        namespace: ns,
        body: {
          spec: {
            audiences,
            expirationSeconds,
            boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: pod.metadata?.name ?? '', uid: pod.metadata?.uid ?? '' },
          },
        },
      });
      const token = answer.status?.token;
      if (token === undefined) throw new Error(`TokenRequest for ${ns}/${name} returned no token`);
      return token;
    },
  };
}

export async function startKube(t: Pick<Test, 'teardown' | 'comment'>): Promise<TestKube> {
  const tools = await kubeTools();
  const dir = await tempDir(t, 'mesh-kube-');
  const kube = await startLocalKube({ tools, dir, progress: (line) => t.comment(line) });
  t.teardown(() => kube.stop());
  return { ...kube, ...kubeHelpers(kube) };
}
