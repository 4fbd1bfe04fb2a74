/**
 * Secure naming across network namespaces, with the real programs: four test
 * hosts on one veth segment (test/support/netns.ts).
 * - h0: `consul agent -dev` and `mesh-controlplane run`, both on h0's address;
 * - h1: mesh-agent A with web, which calls api through a local port;
 * - h2: mesh-agent B with the legitimate api;
 * - h3: mesh-agent C with `impostor`, a workload with a valid SVID of the mesh
 *   of its own (spiffe://example.org/ns/default/sa/impostor).
 * Each agent joins with its own token (meshctl token create) from inside its
 * namespace, and its apps are echo servers in the same namespace. Someone who
 * can write to Consul registers an instance of `api` at h3's mesh port:
 * - claiming the impostor's real identity: without a ServiceIdentity it is no
 *   endpoint of web's api cluster, and every request reaches the api on h2;
 * - claiming api's identity (lying meta): it is an endpoint, and h1's Envoy
 *   refuses its certificate by SAN: every request reaches api or fails closed;
 * - with a ServiceIdentity (meshctl policy apply) allowing sa/api and
 *   sa/impostor, both serve, and api sees web's SPIFFE ID, presented by h1's
 *   Envoy across the segment, in x-forwarded-client-cert.
 * Authorization across the segment too: with an AuthorizationPolicy letting
 * only web call api, a request from the impostor workload on h3 (a valid
 * identity of the mesh that also calls api) gets 403 from h2's Envoy, and
 * web on h1 still gets 200.
 * Every process is stopped by its pid and the namespaces are removed.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { startAgentProcess } from '../support/agent-process.js';
import { childKeeper, processesWith } from '../support/child.js';
import { type CallTally, clusterEndpoints } from '../support/mesh-calls.js';
import { createNetwork, listNetns, privilegedSkipReason, type TestHost } from '../support/netns.js';
import { CP_PORT, dist, httpIn, meshctl, startNetnsPeers } from '../support/netns-peers.js';
import { tools } from '../support/tools.js';
import { waitFor } from '../support/wait.js';
import { workloadYaml } from '../support/workload-files.js';

const skip = await privilegedSkipReason();
if (skip !== undefined) process.stderr.write(`# skipping privileged tests: ${skip}\n`);

const TD = 'example.org';
const id = (sa: string) => `spiffe://${TD}/ns/default/sa/${sa}`;
const API = id('api');
const IMPOSTOR = id('impostor');
const WEB = id('web');
/** Each host is its own namespace: the same ports serve on every host. */
const APP_PORT = 8080;
const MESH_PORT = { web: 21001, api: 21002, impostor: 21003 } as const;
const API_LOCAL = 9001;
const ENVOY_ADMIN = 15000;
const STATUS = 15100;
/** Requests per measured phase. */
const N = 30;

/** n requests from a process inside h1 through web's upstream port for api. */
async function tallyFrom(host: TestHost, n: number): Promise<CallTally> {
  const r = await host.exec(process.execPath, [dist('test', 'support', 'mesh-calls-main.js'), String(API_LOCAL), String(n)], {
    timeoutMs: 6_000 * n + 10_000,
  });
  if (r.code !== 0) throw new Error(`mesh-calls in ${host.name} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as CallTally;
}

const serviceIdentity = (allowed: string[]) =>
  ['apiVersion: mesh.v1', 'kind: ServiceIdentity', 'metadata:', '  name: api-servers', 'spec:', '  service: api', '  allowedIdentities:']
    .concat(allowed.map((a) => `    - ${a}`))
    .join('\n');

t.test('secure naming across network namespaces, with the real programs', { skip: skip ?? false, timeout: 400_000 }, async (t) => {
  const { envoy } = await tools();
  const base = await mkdtemp(path.join(os.tmpdir(), 'mesh-netns-naming-'));
  const net = await createNetwork(4);
  /** Every long-running process, in start order; stopped in reverse (agents before their apps, Consul last). */
  const { keep, stopAll } = childKeeper();
  t.teardown(async () => {
    await stopAll();
    await net.remove().catch(() => undefined);
    await rm(base, { recursive: true, force: true });
  });
  const [h0, h1, h2, h3] = net.hosts as [TestHost, TestHost, TestHost, TestHost];

  // h0: Consul and the control plane on h0's address.
  const { consulAddr, cp, cpDir, bundleFile } = await startNetnsPeers(h0, base, TD, keep);
  t.equal(cp.address, `${h0.address}:${CP_PORT}`, 'the control plane listens on h0');

  /** Joins the host as vm-<name> (its own token, allowed only its workload's ID), starts its app and its agent. */
  const startHost = async (host: TestHost, name: keyof typeof MESH_PORT, upstreams: Array<{ service: string; localPort: number }> = []) => {
    const dir = path.join(base, name);
    const dataDir = path.join(dir, 'data');
    const workloadsDir = path.join(dir, 'workloads.d');
    await mkdir(workloadsDir, { recursive: true });
    const token = (await meshctl(['token', 'create', '--data-dir', cpDir, '--node', `vm-${name}`, '--allow', id(name)])).trim();
    const joinArgs = ['join', '--controlplane', cp.address, '--token', token, '--ca-bundle', bundleFile, '--data-dir', dataDir];
    const joined = await host.exec(process.execPath, [dist('agent', 'main.js'), ...joinArgs], { timeoutMs: 30_000 });
    if (joined.code !== 0) throw new Error(`mesh-agent join in ${host.name} exited ${joined.code}: ${joined.stderr}`);
    const app = keep(host.spawn(process.execPath, [dist('test', 'support', 'echo-app-main.js'), name, String(APP_PORT)]));
    await waitFor(async () => (app.output().includes('listening') ? true : undefined), { what: `app ${name} in ${host.name}` });
    await writeFile(path.join(workloadsDir, `${name}.yaml`), workloadYaml({ name, port: APP_PORT, meshPort: MESH_PORT[name], upstreams }));
    const configFile = path.join(dir, 'agent.json');
    const agentConfig = {
      nodeName: `vm-${name}`,
      trustDomain: TD,
      dataDir,
      workloadsDir,
      advertiseAddress: host.address,
      controlPlane: { address: cp.address, caBundle: bundleFile },
      consul: { address: consulAddr, retryInitial: '100ms', retryMax: '1s', syncInterval: '1s', watchWait: '10s' },
      envoy: { binary: envoy.path, adminPort: ENVOY_ADMIN, concurrency: 1, drainTime: '1s' },
      status: { listen: `127.0.0.1:${STATUS}` },
    };
    await writeFile(configFile, JSON.stringify(agentConfig, null, 2));
    return keep(startAgentProcess(configFile, host.spawn));
  };
  await startHost(h2, 'api');
  await startHost(h3, 'impostor', [{ service: 'api', localPort: API_LOCAL }]);
  const agentA = await startHost(h1, 'web', [{ service: 'api', localPort: API_LOCAL }]);

  const apiEndpoint = `${h2.address}:${MESH_PORT.api}`;
  const impostorEndpoint = `${h3.address}:${MESH_PORT.impostor}`;
  const endpoints = async () => clusterEndpoints((await httpIn(h1, `http://127.0.0.1:${ENVOY_ADMIN}/clusters`)).body, 'outbound:api@web');
  const status = async () =>
    JSON.parse((await httpIn(h1, `http://127.0.0.1:${STATUS}/status`)).body) as { upstreamProblems?: Array<{ reason: string }> };
  const registerImpostor = async (claimed: string) => {
    const body = JSON.stringify({
      ID: 'api-impostor',
      Name: 'api',
      Address: h3.address,
      Port: APP_PORT,
      Meta: { mesh_spiffe_id: claimed, mesh_protocol: 'http', mesh_port: String(MESH_PORT.impostor) },
    });
    const r = await httpIn(h0, `http://${consulAddr}/v1/agent/service/register`, { method: 'PUT', body });
    if (r.status !== 200) throw new Error(`consul register: HTTP ${r.status}: ${r.body}`);
  };

  try {
    await waitFor(async () => ((await tallyFrom(h1, 1)).counts.api === 1 ? true : undefined), {
      timeoutMs: 90_000,
      what: 'web on h1 to reach api on h2 through the mesh',
    });
  } catch (err) {
    throw new Error(`${(err as Error).message}\n--- agent A ---\n${agentA.output().slice(-3000)}`);
  }
  t.same(await endpoints(), [apiEndpoint], "web's api cluster on h1 has the api of h2, across the segment");

  await t.test('no ServiceIdentity: the impostor gets no request, whatever its meta claims', async (t) => {
    await registerImpostor(IMPOSTOR);
    const problem = await waitFor(async () => (await status()).upstreamProblems?.find((p) => p.reason.includes('api-impostor')), {
      timeoutMs: 20_000,
      what: "the impostor reported in agent A's status",
    });
    t.match(problem.reason, /api-impostor \(spiffe:\/\/example\.org\/ns\/default\/sa\/impostor\)/, `status: ${problem.reason}`);
    t.notOk((await endpoints()).includes(impostorEndpoint), 'the impostor is not an endpoint of outbound:api@web');
    const honest = await tallyFrom(h1, N);
    t.comment(`honest meta, ${N} requests: ${JSON.stringify(honest.counts)}`);
    t.same(honest.counts, { api: N }, 'every request reaches the legitimate api on h2');

    await registerImpostor(API);
    await waitFor(async () => ((await endpoints()).includes(impostorEndpoint) ? true : undefined), {
      timeoutMs: 20_000,
      what: 'the lying impostor to become an endpoint',
    });
    const lying = await tallyFrom(h1, N);
    t.comment(`lying meta, ${N} requests: ${JSON.stringify(lying.counts)}`);
    t.equal(lying.counts.impostor, undefined, 'no request reaches the impostor app on h3');
    t.equal((lying.counts.api ?? 0) + (lying.counts.failed ?? 0), N, 'each request reached the legitimate api or failed closed');
    t.ok((lying.counts.api ?? 0) > 0, 'the legitimate api keeps serving');
    // Envoy writes ':' in stat names as '_'.
    const stats = await httpIn(h1, `http://127.0.0.1:${ENVOY_ADMIN}/stats?filter=${encodeURIComponent('ssl.fail_verify_san')}`);
    const failures = Number(/cluster\.outbound_api@web\.ssl\.fail_verify_san: (\d+)/.exec(stats.body)?.[1] ?? 0);
    t.comment(`fail_verify_san of outbound:api@web on h1: ${failures}`);
    t.ok(failures >= 1, `h1's Envoy refused the impostor's certificate by its SAN (fail_verify_san ${failures})`);
  });

  await t.test('a ServiceIdentity allowing sa/api and sa/impostor: both serve; deleted: back to sa/api only', async (t) => {
    await registerImpostor(IMPOSTOR);
    const applied = await meshctl(['policy', 'apply', '--data-dir', cpDir, '-f', '-'], serviceIdentity([API, IMPOSTOR]));
    t.match(applied, /ServiceIdentity\/api-servers created/, 'meshctl applied the ServiceIdentity');
    await waitFor(async () => ((await endpoints()).includes(impostorEndpoint) ? true : undefined), {
      timeoutMs: 30_000,
      what: 'the second service account to become an endpoint on h1',
    });
    const both = await waitFor(
      async () => {
        const seen = await tallyFrom(h1, N);
        return (seen.counts.api ?? 0) > 0 && (seen.counts.impostor ?? 0) > 0 ? seen : undefined;
      },
      { timeoutMs: 30_000, what: 'both service accounts to serve' },
    );
    t.comment(`ServiceIdentity allowing both, ${N} requests: ${JSON.stringify(both.counts)}`);
    t.equal(both.counts.failed, undefined, 'no request failed');
    t.same(both.peers.api, [WEB], "api on h2 saw web's SPIFFE ID in x-forwarded-client-cert, from h1's Envoy");
    t.same(both.peers.impostor, [WEB], 'so did the second allowed service account on h3');
    t.same((await status()).upstreamProblems ?? [], [], 'nothing is reported while the policy allows both');

    await meshctl(['policy', 'delete', 'ServiceIdentity', 'api-servers', '--data-dir', cpDir]);
    await waitFor(async () => ((await endpoints()).includes(impostorEndpoint) ? undefined : true), {
      timeoutMs: 30_000,
      what: 'the second account to leave the endpoints once the resource is deleted',
    });
    const after = await tallyFrom(h1, 10);
    t.same(after.counts, { api: 10 }, 'back to the default rule: only sa/api serves');
  });

  await t.test('authorization across the segment: only web may call api; the identity on h3 gets 403', async (t) => {
    const gone = await httpIn(h0, `http://${consulAddr}/v1/agent/service/deregister/api-impostor`, { method: 'PUT' });
    t.equal(gone.status, 200, 'the impostor instance is out of the catalog (only the real api on h2 serves)');
    await waitFor(async () => ((await httpIn(h3, `http://127.0.0.1:${API_LOCAL}/`)).status === 200 ? true : undefined), {
      timeoutMs: 60_000,
      what: 'the workload on h3 to reach api on h2 before the policy',
    });
    const policy = [
      'apiVersion: mesh.v1',
      'kind: AuthorizationPolicy',
      'metadata: { name: api-callers }',
      'spec:',
      '  target: { service: api }',
      '  defaultAction: deny',
      '  rules:',
      `    - { name: web-may-call, action: allow, from: { ids: [${WEB}] } }`,
    ].join('\n');
    t.match(await meshctl(['policy', 'apply', '--data-dir', cpDir, '-f', '-'], policy), /AuthorizationPolicy\/api-callers created/);
    await waitFor(async () => ((await httpIn(h3, `http://127.0.0.1:${API_LOCAL}/`)).status === 403 ? true : undefined), {
      timeoutMs: 30_000,
      what: "h2's Envoy to deny the identity on h3",
    });
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) statuses.push((await httpIn(h3, `http://127.0.0.1:${API_LOCAL}/`)).status);
    t.same([...new Set(statuses)], [403], 'every request from h3 is denied with 403');
    const fromWeb = await tallyFrom(h1, 10);
    t.same(fromWeb.counts, { api: 10 }, 'web on h1 still reaches api');
    t.same(fromWeb.peers.api, [WEB], "with web's identity");
    const stats = (await httpIn(h2, `http://127.0.0.1:${ENVOY_ADMIN}/stats?filter=rbac`)).body;
    const denied = /http\.inbound_api\.rbac\.authz_allow_\.denied: (\d+)/.exec(stats);
    t.ok(Number(denied?.[1] ?? 0) >= 10, `h2's Envoy counted the denials (${denied?.[0] ?? 'no counter'})`);
    await meshctl(['policy', 'delete', 'AuthorizationPolicy', 'api-callers', '--data-dir', cpDir]);
  });

  // Teardown, checked: every process by its pid, then the namespaces.
  for (const c of await stopAll()) t.ok(c.exited(), `pid ${c.pid} stopped`);
  t.same(
    processesWith(base).map((p) => p.args.join(' ')),
    [],
    'no process of the test (Envoy included) is left',
  );
  await net.remove();
  const left = (await listNetns()).filter((ns) => ns.startsWith(net.id));
  t.same(left, [], 'no namespace of the test remains');
});
