/**
 * Server-side policy enforced by real Envoy (control plane for SVIDs, Consul
 * dev agent, two agents each with its own Envoy; policy fed straight into the
 * server's agent with FakePolicySource):
 * - vm-a runs web (calls api and cache) and api (HTTP) and cache (TCP); vm-b
 *   runs probe, a third identity that calls api;
 * - AuthorizationPolicy: only web may call api -> web 200, probe 403; a deny
 *   rule beats an allow rule (403 for web on /admin); the rule's name shows in
 *   Envoy's stats and in the JSON access log; a TCP deny closes the connection;
 * - PeerAuthentication: plaintext to api's mesh port only in permissive mode,
 *   and status says so;
 * - RateLimit: 429 with x-mesh-ratelimited beyond the bucket, workload-wide and
 *   on a route with its own bucket.
 */
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import t, { type Test } from 'tap';
import { inboundAccessLogPath } from '../../agent/envoy/agent-envoy.js';
import { renderStatus } from '../../agent/status/render.js';
import { FakePolicySource } from '../fakes/policy-source.js';
import { plaintextProbe, startEchoApp } from '../support/mesh-apps.js';
import { type MeshNode, startMeshNode } from '../support/mesh-node.js';
import { startMeshPeers } from '../support/mesh-world.js';
import { freePorts } from '../support/ports.js';
import { waitFor } from '../support/wait.js';

t.setTimeout(300_000);

const TD = 'example.org';
const WEB = `spiffe://${TD}/ns/default/sa/web`;
const API = `spiffe://${TD}/ns/default/sa/api`;

const peers = await startMeshPeers(t, { trustDomain: TD });

interface World {
  a: MeshNode;
  policy: FakePolicySource;
  ports: { apiMesh: number; apiLocal: number; cacheLocal: number; probeApiLocal: number };
}

async function tcpEcho(): Promise<{ port: number; close(): Promise<void> }> {
  const server = net.createServer((s) => s.pipe(s));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

async function world(t: Test): Promise<World> {
  const web = await startEchoApp('web');
  const api = await startEchoApp('api');
  const probe = await startEchoApp('probe');
  const cache = await tcpEcho();
  t.teardown(() => Promise.all([web.close(), api.close(), probe.close(), cache.close()]));
  const [webMesh, apiMesh, cacheMesh, probeMesh, apiLocal, cacheLocal, probeApiLocal] = (await freePorts(7)) as number[] as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const policy = new FakePolicySource();
  const a = await startMeshNode({
    cp: peers.cp,
    consulAddr: peers.consul.httpAddr,
    nodeName: 'vm-a',
    policy,
    workloads: {
      'web.yaml': `name: web\nport: ${web.port}\nmeshPort: ${webMesh}\nprotocol: http\nupstreams: [{ service: api, localPort: ${apiLocal} }, { service: cache, localPort: ${cacheLocal} }]\n`,
      'api.yaml': `name: api\nport: ${api.port}\nmeshPort: ${apiMesh}\nprotocol: http\n`,
      'cache.yaml': `name: cache\nport: ${cache.port}\nmeshPort: ${cacheMesh}\nprotocol: tcp\n`,
    },
  });
  t.teardown(() => a.stop());
  const b = await startMeshNode({
    cp: peers.cp,
    consulAddr: peers.consul.httpAddr,
    nodeName: 'vm-b',
    workloads: {
      'probe.yaml': `name: probe\nport: ${probe.port}\nmeshPort: ${probeMesh}\nprotocol: http\nupstreams: [{ service: api, localPort: ${probeApiLocal} }]\n`,
    },
  });
  t.teardown(() => b.stop());
  const w = { a, policy, ports: { apiMesh, apiLocal, cacheLocal, probeApiLocal } };
  await waitFor(async () => ((await get(apiLocal)).status === 200 && (await get(probeApiLocal)).status === 200 ? true : undefined), {
    timeoutMs: 40_000,
    what: 'web and probe reach api through the mesh',
  });
  await waitFor(async () => ((await tcpRoundTrip(cacheLocal)) === 'ping' ? true : undefined), {
    timeoutMs: 20_000,
    what: 'web reaches cache (TCP) through the mesh',
  });
  return w;
}

async function get(port: number, urlPath = '/'): Promise<{ status: number; headers: Headers; body: string }> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}${urlPath}`, { signal: AbortSignal.timeout(5_000) });
    return { status: res.status, headers: res.headers, body: await res.text() };
  } catch (err) {
    return { status: 0, headers: new Headers(), body: (err as Error).message };
  }
}

/** Writes "ping" through a local TCP port; resolves with what came back before the connection closed (or 2 s passed). */
function tcpRoundTrip(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let data = '';
    const done = () => {
      s.destroy();
      resolve(data);
    };
    s.setTimeout(2_000, done);
    s.on('connect', () => s.write('ping'));
    s.on('data', (c) => {
      data += c.toString();
      if (data === 'ping') done();
    });
    s.on('error', done);
    s.on('close', done);
  });
}

function doc(kind: string, name: string, spec: unknown) {
  return { apiVersion: 'mesh.v1', kind, metadata: { name }, spec };
}

async function stats(n: MeshNode, filter: string): Promise<Record<string, number>> {
  const body = await n.admin(`/stats?filter=${encodeURIComponent(filter)}`);
  const out: Record<string, number> = {};
  for (const line of body.split('\n')) {
    const m = /^(\S+): (\d+)$/.exec(line.trim());
    if (m) out[m[1] as string] = Number(m[2]);
  }
  return out;
}

const authz = (rules: unknown[], defaultAction = 'deny') =>
  doc('AuthorizationPolicy', 'api-authz', { target: { service: 'api' }, defaultAction, rules });

t.test('authorization: only web may call api; deny beats allow; the rule name in stats and access log; TCP deny closes', async (t) => {
  const w = await world(t);
  w.policy.set([
    authz([
      { name: 'only-web', action: 'allow', from: { ids: [WEB] } },
      { name: 'no-admin', action: 'deny', from: { ids: [WEB] }, http: { paths: [{ prefix: '/admin' }] } },
    ]),
    doc('AuthorizationPolicy', 'cache-authz', {
      target: { service: 'cache' },
      defaultAction: 'allow',
      rules: [{ name: 'block-web', action: 'deny', from: { ids: [WEB] } }],
    }),
  ]);
  const denied = await waitFor(
    async () => {
      const r = await get(w.ports.probeApiLocal);
      return r.status === 403 ? r : undefined;
    },
    { timeoutMs: 20_000, what: 'probe to be denied (403)' },
  );
  t.equal(denied.status, 403, 'probe (a third identity) gets 403');
  const ok = await get(w.ports.apiLocal);
  t.equal(ok.status, 200, 'web gets 200');
  t.equal((JSON.parse(ok.body) as { app: string }).app, 'api');
  const admin = await get(w.ports.apiLocal, '/admin/x');
  t.equal(admin.status, 403, 'the deny rule beats the allow rule for web on /admin');

  const s = await stats(w.a, 'rbac');
  const named = Object.entries(s).filter(([k]) => k.includes('no-admin') || k.includes('no_admin'));
  t.ok(
    named.some(([, v]) => v >= 1),
    `a per-rule stat names the deny rule: ${JSON.stringify(named)}`,
  );
  t.ok((s['http.inbound_api.rbac.authz_deny_.denied'] ?? 0) >= 1, 'the deny set counted the denial');
  t.ok((s['http.inbound_api.rbac.authz_deny_.policy.api-authz.no-admin.denied'] ?? 0) >= 1, 'the per-rule stat of the deny rule');
  t.ok((s['http.inbound_api.rbac.authz_allow_.denied'] ?? 0) >= 1, 'the allow set counted the default deny');
  t.ok((s['http.inbound_api.rbac.authz_allow_.policy.api-authz.only-web.allowed'] ?? 0) >= 1, 'the per-rule stat of the allow rule');
  t.pass(`rbac stats: ${JSON.stringify(s)}`);

  const logFile = inboundAccessLogPath(w.a.dataDir);
  const lines = await waitFor(
    async () => {
      const text = await readFile(logFile, 'utf8').catch(() => '');
      const parsed = text
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      return parsed.some((l) => String(l.details).includes('api-authz.no-admin')) ? parsed : undefined;
    },
    { timeoutMs: 15_000, what: `the deny in the access log ${logFile}` },
  );
  const line = lines.find((l) => String(l.details).includes('api-authz.no-admin'));
  t.match(line, {
    listener: 'inbound:api',
    status: '403',
    path: '/admin/x',
    peer: WEB,
    details: 'rbac_access_denied_matched_policy[api-authz.no-admin]',
  });
  t.ok(
    lines.some((l) => l.status === 403 && l.details === 'rbac_access_denied_matched_policy[none]' && String(l.peer).endsWith('/sa/probe')),
    "the probe's default deny shows as policy none",
  );
  t.pass(`access log line: ${JSON.stringify(line)}`);

  // TCP: the connection is closed without reaching the app.
  const echoed = await waitFor(async () => ((await tcpRoundTrip(w.ports.cacheLocal)) === '' ? 'closed' : undefined), {
    timeoutMs: 20_000,
    what: 'the TCP deny to close the connection',
  });
  t.equal(echoed, 'closed', 'a denied TCP connection is closed, nothing echoed');
  const tcpStats = await stats(w.a, 'authz_cache');
  t.ok((tcpStats['authz_cache_deny_block_web.rbac.denied'] ?? 0) >= 1, `network RBAC stats name the rule: ${JSON.stringify(tcpStats)}`);
  const tcpLog = await waitFor(
    async () => {
      const text = await readFile(logFile, 'utf8').catch(() => '');
      return text.split('\n').find((l) => l.includes('cache-authz.block-web'));
    },
    { timeoutMs: 15_000, what: 'the TCP deny in the access log' },
  );
  t.match(JSON.parse(tcpLog) as object, { listener: 'inbound:cache', peer: WEB });

  w.policy.set([]);
  await waitFor(async () => ((await get(w.ports.probeApiLocal)).status === 200 ? true : undefined), {
    timeoutMs: 20_000,
    what: 'probe allowed again once the policy is gone',
  });
  t.equal(await tcpRoundTrip(w.ports.cacheLocal), 'ping', 'TCP passes again');
});

t.test('mTLS mode: plaintext only in permissive mode, and status says so', async (t) => {
  const w = await world(t);
  const strict = await plaintextProbe(w.ports.apiMesh);
  t.notOk(strict.ok && strict.status === 200, `strict (default): plaintext refused (${strict.ok ? strict.status : strict.error})`);
  t.equal(w.a.agent.status().workloads.find((x) => x.name === 'api')?.mtls, undefined, 'status shows no plaintext in strict mode');

  w.policy.set([doc('PeerAuthentication', 'api-migrating', { target: { service: 'api' }, mode: 'permissive' })]);
  const open = await waitFor(
    async () => {
      const r = await plaintextProbe(w.ports.apiMesh);
      return r.ok && r.status === 200 ? r : undefined;
    },
    { timeoutMs: 20_000, what: 'plaintext to be accepted in permissive mode' },
  );
  t.match(open.body, /"app":"api"/, 'plaintext reaches api');
  t.match(open.body, /"xfcc":""/, 'a plaintext request carries no XFCC');
  t.equal((await get(w.ports.apiLocal)).status, 200, 'mTLS still works in permissive mode');
  const doc_ = w.a.agent.status();
  t.same(doc_.workloads.find((x) => x.name === 'api')?.mtls, { mode: 'permissive', policy: 'api-migrating' }, 'status shows the mode');
  t.match(renderStatus(doc_), /warning: workload api accepts plaintext on mesh port \d+ \(PeerAuthentication api-migrating: permissive\)/);

  w.policy.set([doc('PeerAuthentication', 'api-strict', { target: { spiffeId: API }, mode: 'strict' })]);
  await waitFor(
    async () => {
      const r = await plaintextProbe(w.ports.apiMesh);
      return r.ok && r.status === 200 ? undefined : true;
    },
    { timeoutMs: 20_000, what: 'plaintext refused again in strict mode' },
  );
  t.equal(w.a.agent.status().workloads.find((x) => x.name === 'api')?.mtls, undefined);
});

t.test('rate limit: 429 with x-mesh-ratelimited beyond the bucket', async (t) => {
  const w = await world(t);
  w.policy.set([
    doc('RateLimit', 'api-limit', {
      target: { service: 'api' },
      requestsPerSecond: 1,
      burst: 2,
      routes: [{ name: 'slow', path: { prefix: '/slow' }, requestsPerSecond: 1, burst: 1 }],
    }),
  ]);
  const limited = await waitFor(
    async () => {
      const answers = await Promise.all(Array.from({ length: 6 }, () => get(w.ports.apiLocal)));
      return answers.find((r) => r.status === 429);
    },
    { timeoutMs: 20_000, what: 'a 429 beyond the rate' },
  );
  t.equal(limited.status, 429);
  t.equal(limited.headers.get('x-mesh-ratelimited'), 'true', 'the response says it was rate limited');
  const s = await stats(w.a, 'ratelimit_api');
  t.ok((s['ratelimit_api.http_local_rate_limit.rate_limited'] ?? 0) >= 1, `stats count it: ${JSON.stringify(s)}`);
  t.equal(s['ratelimit_api_slow.http_local_rate_limit.rate_limited'] ?? 0, 0, 'the route bucket is apart: untouched so far');

  // The per-route bucket: its own stats, its own 429s.
  const slow = await waitFor(
    async () => {
      const answers = await Promise.all(Array.from({ length: 4 }, () => get(w.ports.apiLocal, '/slow/x')));
      return answers.find((r) => r.status === 429);
    },
    { timeoutMs: 20_000, what: 'a 429 on the /slow route' },
  );
  t.equal(slow.headers.get('x-mesh-ratelimited'), 'true');
  const routeStats = await stats(w.a, 'ratelimit_api_slow');
  t.ok(
    (routeStats['ratelimit_api_slow.http_local_rate_limit.rate_limited'] ?? 0) >= 1,
    `the route's bucket counts it: ${JSON.stringify(routeStats)}`,
  );
});
