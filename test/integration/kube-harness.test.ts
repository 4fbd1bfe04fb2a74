/**
 * The test Kubernetes API server (test/support/kube.ts) does what the
 * Kubernetes tests rely on: a namespace per test, ServiceAccounts, Pods with
 * status, pod-bound tokens that TokenReview accepts (and rejects once the pod
 * is gone), watches that resume from a resourceVersion, and a restart of the
 * API server that keeps the objects (etcd keeps running).
 */
import * as k8s from '@kubernetes/client-node';
import t from 'tap';
import { startKube } from '../support/kube.js';
import { waitFor } from '../support/wait.js';

t.setTimeout(300_000);

t.test('a real API server: tokens, TokenReview, watches from a resourceVersion, restart', async (t) => {
  const kube = await startKube(t);
  const version = await kube.kc.makeApiClient(k8s.VersionApi).getCode();
  t.equal(version.gitVersion, 'v1.37.2', 'the pinned kube-apiserver');

  const ns = await kube.namespace('harness');
  await kube.serviceAccount(ns, 'api');
  const pod = await kube.runningPod(ns, 'api-0', { serviceAccount: 'api', podIP: '10.244.0.10', labels: { app: 'api' } });
  t.equal(pod.status?.phase, 'Running', 'pod status set through the status subresource');
  t.equal(pod.status?.podIP, '10.244.0.10');

  const token = await kube.podToken(ns, pod, ['example.org']);
  const review = await kube.auth.createTokenReview({ body: { spec: { token, audiences: ['example.org'] } } });
  t.equal(review.status?.authenticated, true, 'TokenReview accepts the pod-bound token');
  t.equal(review.status?.user?.username, `system:serviceaccount:${ns}:api`);
  t.same(review.status?.user?.extra?.['authentication.kubernetes.io/pod-name'], ['api-0'], 'and names the bound pod');
  const wrongAudience = await kube.auth.createTokenReview({ body: { spec: { token, audiences: ['other.example'] } } });
  t.equal(wrongAudience.status?.authenticated ?? false, false, 'a token for another audience is refused');

  const list = await kube.core.listNamespacedService({ namespace: ns });
  const seen: string[] = [];
  const watch = new k8s.Watch(kube.kc);
  const req = await watch.watch(
    `/api/v1/namespaces/${ns}/services`,
    { resourceVersion: list.metadata?.resourceVersion ?? '0', allowWatchBookmarks: true },
    (type: string, obj: k8s.V1Service) => seen.push(`${type} ${obj.metadata?.name}`),
    () => {},
  );
  await kube.core.createNamespacedService({ namespace: ns, body: { metadata: { name: 'api' }, spec: { ports: [{ port: 8080 }] } } });
  await waitFor(async () => (seen.includes('ADDED api') ? true : undefined), { what: 'the watch to see the new Service' });
  req.abort();
  t.pass('a watch from the list resourceVersion sees the new Service');

  await kube.core.deleteNamespacedPod({ name: 'api-0', namespace: ns, gracePeriodSeconds: 0 });
  await waitFor(
    async () => {
      const r = await kube.auth.createTokenReview({ body: { spec: { token, audiences: ['example.org'] } } });
      return r.status?.authenticated ? undefined : true;
    },
    { what: 'TokenReview to refuse the token of the deleted pod' },
  );
  t.pass('once the pod is gone its token is refused');

  await kube.stopApiserver();
  await kube.startApiserver();
  const again = await kube.core.readNamespacedService({ name: 'api', namespace: ns });
  t.equal(again.metadata?.name, 'api', 'the objects outlive a restart of the API server');
});
