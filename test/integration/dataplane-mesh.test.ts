/**
 * The data plane end to end with the real parts: control plane (SVIDs),
 * Consul dev agent (registration, catalog), the agent as `mesh-agent run`
 * wires it, and real Envoy started by the supervisor.
 * - two workloads on one agent (once per xDS API) and on two agents each with
 *   its own Envoy: web -> api through the upstream port arrives with web's
 *   SPIFFE ID in XFCC; plaintext to a mesh port fails; a client certificate
 *   of another trust domain is refused;
 * - an endpoint added to / removed from Consul shows up in / leaves Envoy's
 *   /clusters (the time it took is printed; bench/xds measures it properly);
 * - a resource Envoy rejects (put in by a snapshot-cache decorator the test
 *   composes into the agent): the NACK is in /status with its detail, Envoy
 *   keeps serving, the next valid change is accepted;
 * - Envoy killed with SIGKILL: restarted, config served again, traffic back,
 *   the restart counted in status.
 */
import t, { type Test } from 'tap';
import type { StatusDocument } from '../../agent/status/status.js';
import { outboundClusterName } from '../../agent/xds/names.js';
import { type EchoAnswer, getJson, plaintextProbe, tlsProbe, xfccUri } from '../support/mesh-apps.js';
import { type MeshNode, type MeshNodeOptions, startMeshNode } from '../support/mesh-node.js';
import { type MeshWorld, meshTraffic, startMeshPeers, startWebApi } from '../support/mesh-world.js';
import { overridingCache } from '../support/snapshot-edits.js';
import { createTestCa } from '../support/test-ca.js';
import { httpGet, waitFor } from '../support/wait.js';

t.setTimeout(300_000);

const TD = 'example.org';
const WEB = `spiffe://${TD}/ns/default/sa/web`;

/**
 * One control plane and one Consul for the whole file (their start-up is most of a test's
 * set-up); each test has its own apps, ports and node names, and its nodes leave Consul when
 * it ends.
 */
const peers = await startMeshPeers(t, { trustDomain: TD });

async function world(t: Test): Promise<MeshWorld> {
  return { ...peers, ...(await startWebApi(t)) };
}

/** The workload files, each app checked by Consul. */
const webFile = (w: MeshWorld) => w.files({ check: true })['web.yaml'] as string;
const apiFile = (w: MeshWorld) => w.files({ check: true })['api.yaml'] as string;

async function node(
  t: Test,
  w: MeshWorld,
  name: string,
  workloads: Record<string, string>,
  api: 'sotw' | 'delta' = 'delta',
  extra: Pick<MeshNodeOptions, 'snapshotCache'> = {},
): Promise<MeshNode> {
  const n = await startMeshNode({ cp: w.cp, consulAddr: w.consul.httpAddr, nodeName: name, workloads, api, ...extra });
  t.teardown(() => n.stop());
  return n;
}

async function status(n: MeshNode): Promise<StatusDocument> {
  const { body } = await httpGet(`http://${n.agent.statusAddress}/status`);
  return JSON.parse(body) as StatusDocument;
}

function throughMesh(w: MeshWorld): Promise<EchoAnswer> {
  return meshTraffic(w.ports.apiLocal, { timeoutMs: 30_000, what: 'web -> api through the mesh' });
}

async function consulPut(w: MeshWorld, apiPath: string, init: { body?: string }): Promise<void> {
  const res = await fetch(`http://${w.consul.httpAddr}${apiPath}`, { method: 'PUT', ...init });
  if (res.status !== 200) throw new Error(`consul ${apiPath}: HTTP ${res.status}: ${await res.text()}`);
}

async function hostsOf(n: MeshNode, cluster: string): Promise<string[]> {
  const clusters = JSON.parse(await n.admin('/clusters?format=json')) as {
    cluster_statuses?: Array<{
      name: string;
      host_statuses?: Array<{ address: { socket_address: { address: string; port_value: number } } }>;
    }>;
  };
  const c = clusters.cluster_statuses?.find((x) => x.name === cluster);
  return (c?.host_statuses ?? []).map((h) => `${h.address.socket_address.address}:${h.address.socket_address.port_value}`).sort();
}

async function checkRefusals(t: Test, w: MeshWorld, meshPort: number): Promise<void> {
  const plain = await plaintextProbe(meshPort);
  t.notOk(plain.ok, `plaintext to mesh port ${meshPort} fails (${plain.ok ? plain.status : plain.error})`);
  const evil = (await createTestCa('evil.example')).issue('spiffe://evil.example/ns/default/sa/web');
  const foreign = await tlsProbe(meshPort, { certPem: evil.chainPem, keyPem: evil.keyPem, caPem: w.cp.bundlePem() });
  t.notOk(
    foreign.ok && foreign.status === 200,
    `a client certificate of another trust domain is refused (${foreign.ok ? foreign.status : foreign.error})`,
  );
}

for (const api of ['sotw', 'delta'] as const) {
  t.test(`one agent (${api}): web -> api over mTLS with XFCC; plaintext and foreign trust domain refused; healthy status`, async (t) => {
    const w = await world(t);
    const n = await node(t, w, `vm-${api}`, { 'web.yaml': webFile(w), 'api.yaml': apiFile(w) }, api);
    const answer = await throughMesh(w);
    t.equal(answer.app, 'api');
    t.equal(xfccUri(answer.xfcc), WEB, 'api saw web SPIFFE ID in x-forwarded-client-cert');
    await checkRefusals(t, w, w.ports.apiMesh);
    const s = await waitFor(
      async () => {
        const doc = await status(n);
        return doc.healthy && doc.workloads.every((x) => x.check === 'passing') ? doc : undefined;
      },
      { timeoutMs: 20_000, what: 'a healthy status' },
    ).catch(async () => status(n));
    t.same(s.problems, [], 'no problems');
    t.same(
      s.workloads.map((x) => `${x.name}:${x.registration}:${x.check}`),
      ['api:registered:passing', 'web:registered:passing'],
      'registration and health (Consul runs the checks) per workload',
    );
    t.equal(s.envoy?.state, 'running');
    t.equal(s.xds?.streams[0]?.api, api, `Envoy speaks ${api} to the agent`);
    t.ok(
      s.workloads.every((x) => x.svid?.state === 'ready' && x.dataPlane === 'serving'),
      'both workloads have SVIDs and are served',
    );
    t.equal(s.upstreams.find((u) => u.service === 'api')?.endpoints, 1, 'api upstream has one endpoint');
    t.ok(
      s.xds?.types.every((x) => x.ackedVersion !== undefined),
      'every xDS type acknowledged',
    );
    const xdsOnly = await httpGet(`http://${n.agent.statusAddress}/status/xds`);
    t.equal(xdsOnly.status, 200, 'GET /status/xds answers');
    const alone = (JSON.parse(xdsOnly.body) as Pick<StatusDocument, 'xds'>).xds;
    const again = (await status(n)).xds;
    t.same(Object.keys(alone ?? {}).sort(), Object.keys(again ?? {}).sort(), '/status/xds has the keys of the xds section of /status');
    t.same(alone?.streams, again?.streams, 'the same ADS streams');
    t.same(
      alone?.types.map((x) => [x.type, x.ackedVersion]),
      again?.types.map((x) => [x.type, x.ackedVersion]),
      'the same acknowledged versions',
    );
  });
}

t.test('two agents, each with its own Envoy: web on one, api on the other', async (t) => {
  const w = await world(t);
  const a = await node(t, w, 'vm-a', { 'web.yaml': webFile(w) });
  const b = await node(t, w, 'vm-b', { 'api.yaml': apiFile(w) });
  const answer = await throughMesh(w);
  t.equal(answer.app, 'api');
  t.equal(xfccUri(answer.xfcc), WEB);
  t.not(a.envoyPid(), b.envoyPid(), 'two Envoys');
  await checkRefusals(t, w, w.ports.apiMesh);
  const certs = JSON.parse(await b.admin('/certs')) as {
    certificates: Array<{ cert_chain: Array<{ subject_alt_names: Array<{ uri?: string }> }> }>;
  };
  t.ok(
    JSON.stringify(certs).includes(`spiffe://${TD}/ns/default/sa/api`) && !JSON.stringify(certs).includes(WEB),
    "vm-b's Envoy holds only api's SVID",
  );
});

t.test('endpoints follow Consul; NACK of a config put in through the snapshot cache; SIGKILL of Envoy', async (t) => {
  const w = await world(t);
  const cache = overridingCache();
  const n = await node(t, w, 'vm-1', { 'web.yaml': webFile(w), 'api.yaml': apiFile(w) }, 'delta', { snapshotCache: cache });
  await throughMesh(w);
  const cluster = outboundClusterName('api', 'web');

  // An instance registered in Consul by someone else (another host).
  const started = Date.now();
  await consulPut(w, '/v1/agent/service/register', {
    body: JSON.stringify({
      ID: 'api-remote',
      Name: 'api',
      Address: '127.0.0.9',
      Port: 7000,
      Meta: { mesh_spiffe_id: `spiffe://${TD}/ns/default/sa/api`, mesh_protocol: 'http', mesh_port: '17000' },
    }),
  });
  await waitFor(async () => ((await hostsOf(n, cluster)).includes('127.0.0.9:17000') ? true : undefined), {
    timeoutMs: 10_000,
    what: 'the new endpoint in /clusters',
  });
  const added = Date.now() - started;
  t.pass(`endpoint added in Consul appeared in Envoy's /clusters after ${added} ms`);
  const removedAt = Date.now();
  await consulPut(w, '/v1/agent/service/deregister/api-remote', {});
  await waitFor(async () => ((await hostsOf(n, cluster)).includes('127.0.0.9:17000') ? undefined : true), {
    timeoutMs: 10_000,
    what: 'the endpoint to leave /clusters',
  });
  t.pass(`endpoint removed from Consul left Envoy's /clusters after ${Date.now() - removedAt} ms`);

  // NACK: a cluster Envoy rejects, put into every snapshot the data plane sets into its cache.
  const dp = n.agent.dataPlane;
  if (dp === undefined) throw new Error('no data plane');
  const live = cache.current('vm-1')?.snapshot.resources.clusters.get(cluster);
  const ackedBefore = await waitFor(
    async () => {
      const acked = cache.acked('vm-1').clusters.get(cluster);
      return acked !== undefined && acked === cache.current('vm-1')?.snapshot.versions.clusters.get(cluster) ? acked : undefined;
    },
    { timeoutMs: 10_000, what: 'Envoy to acknowledge the live cluster' },
  );
  t.pass('the acknowledged resources show the live cluster at its served version');
  cache.override('clusters', cluster, { ...(live ?? {}), connect_timeout: { seconds: '-1' } });
  dp.update({});
  const nacked = await waitFor(
    async () => {
      const doc = await status(n);
      return doc.xds?.types.find((x) => x.type === 'CDS')?.lastNack === undefined ? undefined : doc;
    },
    { timeoutMs: 10_000, what: 'the NACK in /status' },
  );
  const nack = nacked.xds?.types.find((x) => x.type === 'CDS')?.lastNack;
  t.match(nack?.detail, /duration/i, `status shows the NACK detail: ${nack?.detail.slice(0, 80)}`);
  t.notOk(nacked.healthy, 'status is unhealthy while Envoy rejects the latest config');
  t.ok(
    nacked.problems.some((p) => p.startsWith('Envoy rejected CDS')),
    'and says why',
  );
  const pushes = dp.status().xds.counters.delta.responses;
  dp.update({});
  await dp.settled();
  t.equal(dp.status().xds.counters.delta.responses, pushes, 'the rejected version is not sent again');
  t.equal((await getJson(w.ports.apiLocal)).app, 'api', 'Envoy keeps serving the previous config');
  t.equal(cache.acked('vm-1').clusters.get(cluster), ackedBefore, 'the acknowledged version of the cluster is still the previous one');
  cache.override('clusters', cluster, undefined);
  dp.update({});
  await waitFor(async () => ((await status(n)).healthy ? true : undefined), {
    timeoutMs: 10_000,
    what: 'the next valid change to be accepted',
  });
  t.pass('the next valid change was accepted (status healthy again)');

  // SIGKILL Envoy: the supervisor restarts it and the agent serves it again.
  const pid = n.envoyPid();
  if (pid === undefined) throw new Error('no Envoy pid');
  process.kill(pid, 'SIGKILL');
  const back = await waitFor(
    async () => {
      const doc = await status(n);
      const envoy = doc.envoy as { state: string; pid?: number; restarts?: number } | undefined;
      return envoy?.state === 'running' && envoy.pid !== pid ? envoy : undefined;
    },
    { timeoutMs: 20_000, what: 'Envoy restarted' },
  );
  t.equal(back.restarts, 1, 'status counts the restart');
  const answer = await throughMesh(w);
  t.equal(xfccUri(answer.xfcc), WEB, 'traffic recovers after the restart');
  t.ok(
    n.logs.some((l) => l.includes('"level":"error"') && /envoy/i.test(l)),
    'the crash is logged',
  );
});
