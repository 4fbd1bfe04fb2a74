/**
 * Secure naming with real Envoys (control plane for SVIDs, Consul dev agent,
 * three agents each with its own Envoy): vm-a runs web, which calls api;
 * vm-b runs the legitimate api; vm-c runs `impostor`, a real workload with a
 * valid mesh SVID of its own (spiffe://example.org/ns/default/sa/impostor).
 * Someone who can write to Consul registers an instance of `api` pointing at
 * the impostor's mesh port:
 * - claiming its real identity in `mesh_spiffe_id`: without a ServiceIdentity
 *   it is left out of web's endpoints (and reported), every request goes to
 *   the legitimate api;
 * - claiming api's identity (lying meta): it is an endpoint, but the TLS peer
 *   check (SANs from the accepted set, not from meta) refuses the impostor's
 *   certificate: every request goes to api or fails, none reaches the impostor;
 * - with a ServiceIdentity allowing both service accounts, both serve; without
 *   it again, the impostor is out again.
 * The agents share the loopback interface (network namespaces would need
 * Consul and the control plane reachable inside them); the identity each
 * Envoy presents is real, which is what the check is about.
 */
import t, { type Test } from 'tap';
import { FakePolicySource } from '../fakes/policy-source.js';
import { startEchoApp } from '../support/mesh-apps.js';
import { call, calls, clusterEndpoints } from '../support/mesh-calls.js';
import { type MeshNode, startMeshNode } from '../support/mesh-node.js';
import { startMeshPeers } from '../support/mesh-world.js';
import { freePorts } from '../support/ports.js';
import { waitFor } from '../support/wait.js';

t.setTimeout(300_000);

const TD = 'example.org';
const API = `spiffe://${TD}/ns/default/sa/api`;
const IMPOSTOR = `spiffe://${TD}/ns/default/sa/impostor`;

const peers = await startMeshPeers(t, { trustDomain: TD });

interface World {
  a: MeshNode;
  policy: FakePolicySource;
  apiLocal: number;
  impostorMesh: number;
  impostorApp: number;
}

async function node(t: Test, name: string, workloads: Record<string, string>, policy?: FakePolicySource): Promise<MeshNode> {
  const n = await startMeshNode({
    cp: peers.cp,
    consulAddr: peers.consul.httpAddr,
    nodeName: name,
    workloads,
    ...(policy === undefined ? {} : { policy }),
  });
  t.teardown(() => n.stop());
  return n;
}

async function world(t: Test): Promise<World> {
  const web = await startEchoApp('web');
  const api = await startEchoApp('api');
  const impostor = await startEchoApp('impostor');
  t.teardown(() => Promise.all([web.close(), api.close(), impostor.close()]));
  const [webMesh, apiMesh, impostorMesh, apiLocal] = (await freePorts(4)) as [number, number, number, number];
  const policy = new FakePolicySource();
  const b = node(t, 'vm-b', { 'api.yaml': `name: api\nport: ${api.port}\nmeshPort: ${apiMesh}\nprotocol: http\n` });
  const c = node(t, 'vm-c', { 'impostor.yaml': `name: impostor\nport: ${impostor.port}\nmeshPort: ${impostorMesh}\nprotocol: http\n` });
  await Promise.all([b, c]);
  const a = await node(
    t,
    'vm-a',
    {
      'web.yaml': `name: web\nport: ${web.port}\nmeshPort: ${webMesh}\nprotocol: http\nupstreams: [{ service: api, localPort: ${apiLocal} }]\n`,
    },
    policy,
  );
  await waitFor(async () => ((await call(apiLocal)) === 'api' ? true : undefined), { timeoutMs: 40_000, what: 'web -> api' });
  t.teardown(() => deregister().catch(() => undefined));
  return { a, policy, apiLocal, impostorMesh, impostorApp: impostor.port };
}

async function consul(apiPath: string, body?: unknown): Promise<void> {
  const res = await fetch(`http://${peers.consul.httpAddr}${apiPath}`, {
    method: 'PUT',
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  if (res.status !== 200) throw new Error(`consul ${apiPath}: HTTP ${res.status}: ${await res.text()}`);
}

/** Registers an instance of api straight into Consul, pointing at the impostor's Envoy, claiming `claimed`. */
function registerImpostor(w: World, claimed: string): Promise<void> {
  return consul('/v1/agent/service/register', {
    ID: 'api-impostor',
    Name: 'api',
    Address: '127.0.0.1',
    Port: w.impostorApp,
    Meta: { mesh_spiffe_id: claimed, mesh_protocol: 'http', mesh_port: String(w.impostorMesh) },
  });
}

function deregister(): Promise<void> {
  return consul('/v1/agent/service/deregister/api-impostor');
}

/** The host:port endpoints of web's api cluster in Envoy. */
async function endpoints(n: MeshNode): Promise<string[]> {
  return clusterEndpoints(await n.admin('/clusters'), 'outbound:api@web');
}

async function viewHasImpostor(n: MeshNode): Promise<boolean> {
  return (n.agent.view().services.api?.instances ?? []).some((i) => i.id === 'api-impostor');
}

const serviceIdentity = (allowed: string[]) => ({
  apiVersion: 'mesh.v1',
  kind: 'ServiceIdentity',
  metadata: { name: 'api-servers' },
  spec: { service: 'api', allowedIdentities: allowed },
});

t.test('no ServiceIdentity: an impostor instance gets no request, whatever its meta claims', async (t) => {
  const w = await world(t);
  const impostorEndpoint = `127.0.0.1:${w.impostorMesh}`;

  await registerImpostor(w, IMPOSTOR);
  await waitFor(async () => ((await viewHasImpostor(w.a)) ? true : undefined), { timeoutMs: 15_000, what: 'the impostor in the view' });
  await w.a.agent.dataPlane?.settled();
  const problem = await waitFor(async () => w.a.agent.status().upstreamProblems?.find((p) => p.reason.includes('api-impostor')), {
    timeoutMs: 10_000,
    what: 'the impostor reported in status',
  });
  t.match(problem.reason, /api-impostor \(spiffe:\/\/example\.org\/ns\/default\/sa\/impostor\)/, `status: ${problem.reason}`);
  t.notOk((await endpoints(w.a)).includes(impostorEndpoint), 'the impostor is not an endpoint of outbound:api@web');
  const honest = await calls(w.apiLocal, 30);
  t.same(honest, { api: 30 }, 'every request goes to the legitimate api');

  // The same endpoint, now lying in its meta: it becomes an endpoint, and the TLS peer check refuses it.
  await registerImpostor(w, API);
  await waitFor(async () => ((await endpoints(w.a)).includes(impostorEndpoint) ? true : undefined), {
    timeoutMs: 15_000,
    what: 'the lying impostor to become an endpoint',
  });
  const lying = await calls(w.apiLocal, 30);
  t.equal(lying.impostor, undefined, `no request reaches the impostor (${JSON.stringify(lying)})`);
  t.equal((lying.api ?? 0) + (lying.failed ?? 0), 30, 'each request went to the legitimate api or failed closed');
  t.ok((lying.api ?? 0) > 0, 'the legitimate api keeps serving');
  // Envoy writes ':' in stat names as '_'.
  const ssl = await w.a.admin(`/stats?filter=${encodeURIComponent('ssl.fail_verify_san')}`);
  const failures = /cluster\.outbound_api@web\.ssl\.fail_verify_san: (\d+)/.exec(ssl);
  t.ok(Number(failures?.[1] ?? 0) >= 1, `Envoy refused the impostor's certificate by its SAN (fail_verify_san ${failures?.[1]})`);
});

t.test('a ServiceIdentity allowing two service accounts: both serve; removed: back to the default', async (t) => {
  const w = await world(t);
  const impostorEndpoint = `127.0.0.1:${w.impostorMesh}`;
  await registerImpostor(w, IMPOSTOR);
  await waitFor(async () => ((await viewHasImpostor(w.a)) ? true : undefined), { timeoutMs: 15_000, what: 'the impostor in the view' });

  // With a resource that allows only api, the second account is still out.
  w.policy.set([serviceIdentity([API])]);
  await w.a.agent.dataPlane?.settled();
  t.notOk((await endpoints(w.a)).includes(impostorEndpoint), 'a ServiceIdentity allowing only api keeps the other out');
  t.same(await calls(w.apiLocal, 10), { api: 10 });

  w.policy.set([serviceIdentity([API, IMPOSTOR])]);
  await waitFor(async () => ((await endpoints(w.a)).includes(impostorEndpoint) ? true : undefined), {
    timeoutMs: 15_000,
    what: 'the second service account to become an endpoint',
  });
  const both = await waitFor(
    async () => {
      const seen = await calls(w.apiLocal, 20);
      return (seen.api ?? 0) > 0 && (seen.impostor ?? 0) > 0 ? seen : undefined;
    },
    { timeoutMs: 20_000, what: 'both service accounts to serve' },
  );
  t.pass(`both serve: ${JSON.stringify(both)}`);
  t.equal(both.failed, undefined, 'no request failed');
  t.same(w.a.agent.status().upstreamProblems ?? [], [], 'nothing is reported while policy allows both');

  w.policy.set([]);
  await waitFor(async () => ((await endpoints(w.a)).includes(impostorEndpoint) ? undefined : true), {
    timeoutMs: 15_000,
    what: 'the second account to leave the endpoints once the resource is gone',
  });
  t.same(await calls(w.apiLocal, 10), { api: 10 }, 'back to the default rule: only sa/api serves');
});
