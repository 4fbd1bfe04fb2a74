/**
 * The real PodReviewer (@kubernetes/client-node) against a local HTTP server
 * standing in for the API server's failures: a pod that is not there is
 * undefined (not an error), a refusal of the control plane's own request or a
 * server error is MESH_E_KUBE_UNREACHABLE with the HTTP status, and an API
 * server that never answers is MESH_E_KUBE_UNREACHABLE once `timeout` passes
 * on the injected clock.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as k8s from '@kubernetes/client-node';
import t from 'tap';
import { kubePodReviewer } from '../../../controlplane/kube/pod-reviewer.js';
import { FakeClock } from '../../fakes/clock.js';
import { waitFor } from '../../support/wait.js';

const held: http.ServerResponse[] = [];
let requests = 0;
const server = http.createServer((req, res) => {
  requests++;
  const json = (status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  const url = req.url ?? '';
  if (url.endsWith('/pods/gone')) return json(404, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404 });
  if (url.endsWith('/pods/here'))
    return json(200, {
      kind: 'Pod',
      apiVersion: 'v1',
      metadata: { name: 'here', uid: 'u-1' },
      spec: { nodeName: 'node-a', containers: [] },
    });
  if (url.endsWith('/pods/boom')) return json(500, { kind: 'Status', apiVersion: 'v1', status: 'Failure', code: 500 });
  if (url.includes('/tokenreviews') && req.headers.authorization === 'Bearer forbidden')
    return json(403, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Forbidden', code: 403 });
  held.push(res);
});
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
t.teardown(
  () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
);
const port = (server.address() as AddressInfo).port;

function connection(token: string) {
  const kc = new k8s.KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: 'u', token }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return { k8s, kc };
}

t.test('pods: found, not found, server error', async (t) => {
  const reviewer = kubePodReviewer(connection('ok'), { clock: new FakeClock(), timeoutMs: 5_000 });
  t.same(await reviewer.pod('ns', 'here'), { uid: 'u-1', nodeName: 'node-a' });
  t.equal(await reviewer.pod('ns', 'gone'), undefined, 'a 404 is "no such pod", not an error');
  await t.rejects(reviewer.pod('ns', 'boom'), { code: 'MESH_E_KUBE_UNREACHABLE', message: /HTTP 500/ });
});

t.test("the control plane's own credentials refused: MESH_E_KUBE_UNREACHABLE with the status, no token in it", async (t) => {
  const reviewer = kubePodReviewer(connection('forbidden'), { clock: new FakeClock(), timeoutMs: 5_000 });
  const err = await reviewer.review('secret.token.value', 'example.org').then(
    () => undefined,
    (e: Error) => e,
  );
  t.match(err, { code: 'MESH_E_KUBE_UNREACHABLE', message: /HTTP 403/ });
  t.notMatch(err?.message ?? '', /secret\.token\.value/, 'the reviewed token is not in the error');
});

t.test('an API server that never answers: MESH_E_KUBE_UNREACHABLE after the timeout', async (t) => {
  const clock = new FakeClock();
  const reviewer = kubePodReviewer(connection('ok'), { clock, timeoutMs: 5_000 });
  const before = requests;
  let settled: unknown;
  const pending = reviewer.review('a.b.c', 'example.org').then(
    () => 'answered',
    (e: unknown) => e,
  );
  void pending.then((v) => {
    settled = v;
  });
  await waitFor(async () => (requests > before ? true : undefined), { what: 'the TokenReview to reach the server' });
  clock.advance(4_999);
  await Promise.resolve();
  t.equal(settled, undefined, 'still waiting just before the timeout');
  clock.advance(1);
  t.match(await pending, { code: 'MESH_E_KUBE_UNREACHABLE', message: /did not answer a TokenReview within 5000 ms/ });
  for (const res of held.splice(0)) res.destroy();
});
