/**
 * Traffic management end to end: the real control plane (SVIDs), a Consul dev
 * agent, one agent as `mesh-agent run` wires it (zone-a) with real Envoy, and
 * TrafficRoute/TrafficPolicy documents fed in through FakePolicySource. The
 * caller's Envoy is the system under test. Upstream instances are HTTPS
 * servers in this process holding their service's SVID, registered straight
 * into Consul (test/support/mesh-instances.ts); the two-callers test uses a
 * real api workload behind the same Envoy and reads XFCC.
 * - two local callers of one service: each presents its own SPIFFE ID;
 * - split 90/10 across subsets over 2,000 requests, a header match to v2;
 * - retries over an upstream failing half its requests; a route timeout (504);
 * - circuit breaker: max pending 1, 20 concurrent callers, overflow counted;
 * - outlier detection ejects the instance answering 500;
 * - faults: abort status, delay applied; mirroring to a failing shadow subset, and
 *   to a service the caller does not call itself (the agent watches it for that);
 * - locality: the caller's zone first, the other zone when it turns critical, back
 *   when it passes again.
 * One control plane, Consul and agent for the whole file.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { outboundClusterName, subsetClusterName } from '../../agent/xds/names.js';
import { FakePolicySource } from '../fakes/policy-source.js';
import { joinedClient } from '../support/controlplane.js';
import { type EchoAnswer, startEchoApp, xfccUri } from '../support/mesh-apps.js';
import {
  type Behaviour,
  type InstanceAnswer,
  type MeshInstance,
  registerInstance,
  type Svid,
  setInstanceHealth,
  startMeshInstance,
  svidFor,
} from '../support/mesh-instances.js';
import { startMeshNode } from '../support/mesh-node.js';
import { startMeshPeers } from '../support/mesh-world.js';
import { freePorts } from '../support/ports.js';
import { waitFor } from '../support/wait.js';
import { workloadYaml } from '../support/workload-files.js';

t.setTimeout(600_000);

const TD = 'example.org';
const id = (sa: string) => `spiffe://${TD}/ns/default/sa/${sa}`;
const doc = (kind: string, name: string, spec: unknown) => ({ apiVersion: 'mesh.v1', kind, metadata: { name }, spec });

const POLICIES = [
  doc('TrafficRoute', 'split', {
    service: 'split',
    subsets: [
      { name: 'v1', tags: ['v1'] },
      { name: 'v2', meta: { version: 'v2' } },
    ],
    http: [
      { name: 'canary', match: { headers: [{ name: 'x-canary', exact: 'yes' }] }, destinations: [{ subset: 'v2' }] },
      {
        name: 'split',
        destinations: [
          { subset: 'v1', weight: 90 },
          { subset: 'v2', weight: 10 },
        ],
      },
    ],
  }),
  doc('TrafficRoute', 'retry', {
    service: 'retry',
    http: [{ name: 'retry', destinations: [{}], retries: { attempts: 3, retryOn: ['5xx'] } }],
  }),
  doc('TrafficRoute', 'slow', { service: 'slow', http: [{ name: 'short', destinations: [{}], timeout: '500ms' }] }),
  doc('TrafficPolicy', 'breaker', { service: 'breaker', circuitBreaker: { maxConnections: 1, maxPendingRequests: 1 } }),
  doc('TrafficPolicy', 'outlier', {
    service: 'outlier',
    outlierDetection: { consecutive5xx: 3, interval: '1s', baseEjectionTime: '10m', maxEjectionPercent: 50 },
  }),
  doc('TrafficRoute', 'fault', {
    service: 'fault',
    http: [
      { name: 'abort', match: { path: { exact: '/abort' } }, destinations: [{}], fault: { abort: { percent: 100, status: 418 } } },
      { name: 'delay', match: { path: { prefix: '/delay' } }, destinations: [{}], fault: { delay: { percent: 100, duration: '400ms' } } },
    ],
  }),
  doc('TrafficRoute', 'mirror', {
    service: 'mirror',
    subsets: [
      { name: 'main', tags: ['main'] },
      { name: 'shadow', tags: ['shadow'] },
    ],
    http: [
      // To another service that web does not list in upstreams[]: the agent watches it for the mirror.
      { name: 'to-service', match: { path: { prefix: '/svc' } }, destinations: [{ subset: 'main' }], mirror: { service: 'shadow' } },
      { name: 'mirrored', destinations: [{ subset: 'main' }], mirror: { subset: 'shadow', percent: 100 } },
    ],
  }),
  doc('TrafficPolicy', 'local', { service: 'local', locality: { preferLocalZone: true } }),
];

const SERVICES = ['api', 'split', 'retry', 'slow', 'breaker', 'outlier', 'fault', 'mirror', 'local'] as const;
/** Services with instances here; `shadow` is only a mirror target (no local port). */
type Service = (typeof SERVICES)[number] | 'shadow';

// --- the world: peers, an SVID signer, apps, one agent in zone-a --------------

const peers = await startMeshPeers(t, { trustDomain: TD });
const signerDir = await mkdtemp(path.join(os.tmpdir(), 'svids-'));
const signer = await joinedClient(peers.cp, 'svid-signer', [`spiffe://${TD}/ns/*/sa/*`], signerDir);
t.teardown(async () => {
  signer.close();
  await rm(signerDir, { recursive: true, force: true });
});

const web = await startEchoApp('web');
const admin = await startEchoApp('admin');
const api = await startEchoApp('api');
t.teardown(() => Promise.all([web.close(), admin.close(), api.close()]));
const ports = await freePorts(3 + SERVICES.length + 1);
const [webMesh, adminMesh, apiMesh, adminApi] = ports as [number, number, number, number];
const local = Object.fromEntries(SERVICES.map((s, i) => [s, ports[4 + i] as number])) as Record<(typeof SERVICES)[number], number>;

const policy = new FakePolicySource();
policy.set(POLICIES);
const node = await startMeshNode({
  cp: peers.cp,
  consulAddr: peers.consul.httpAddr,
  nodeName: 'vm-traffic',
  zone: 'zone-a',
  policy,
  workloads: {
    'web.yaml': workloadYaml({
      name: 'web',
      port: web.port,
      meshPort: webMesh,
      upstreams: SERVICES.map((s) => ({ service: s, localPort: local[s] })),
    }),
    'admin.yaml': workloadYaml({
      name: 'admin',
      port: admin.port,
      meshPort: adminMesh,
      upstreams: [{ service: 'api', localPort: adminApi }],
    }),
    'api.yaml': workloadYaml({ name: 'api', port: api.port, meshPort: apiMesh }),
  },
});
t.teardown(() => node.stop());

// --- helpers -----------------------------------------------------------------

interface Reply {
  status: number;
  headers: Headers;
  body: string;
}

async function call(port: number, urlPath = '/', headers: Record<string, string> = {}, timeoutMs = 10_000): Promise<Reply> {
  const res = await fetch(`http://127.0.0.1:${port}${urlPath}`, { headers, signal: AbortSignal.timeout(timeoutMs) });
  return { status: res.status, headers: res.headers, body: await res.text() };
}

function appOf(reply: Reply): string | undefined {
  if (reply.status !== 200) return undefined;
  return (JSON.parse(reply.body) as InstanceAnswer).app;
}

/** `count` calls, `concurrency` at a time. */
async function many(count: number, concurrency: number, one: (i: number) => Promise<Reply>): Promise<Reply[]> {
  const out: Reply[] = new Array(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const i = next++;
        out[i] = await one(i);
      }
    }),
  );
  return out;
}

function tally(replies: readonly Reply[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of replies) {
    const key = appOf(r) ?? `HTTP ${r.status}`;
    out[key] = (out[key] ?? 0) + 1;
  }
  return out;
}

/** Envoy stats matching a regex, by name. */
async function stats(filter: string): Promise<Map<string, number>> {
  const text = await node.admin(`/stats?filter=${encodeURIComponent(filter)}`);
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^(\S+): (\d+)$/.exec(line.trim());
    if (m !== null) out.set(m[1] as string, Number(m[2]));
  }
  return out;
}

/** Envoy's stat `cluster.<cluster>.<stat>`: its name as Envoy prints it (":" in a cluster name becomes "_") and value. */
async function clusterStat(cluster: string, stat: string): Promise<{ name: string; value: number }> {
  const flat = (s: string) => s.replace(/[^A-Za-z0-9]/g, '_');
  const wanted = flat(`cluster.${cluster}.${stat}`);
  for (const [name, value] of await stats(`${stat.replace(/\./g, '\\.')}$`)) if (flat(name) === wanted) return { name, value };
  return { name: `cluster.${cluster}.${stat} (absent)`, value: 0 };
}

async function hostCount(cluster: string): Promise<number> {
  const clusters = JSON.parse(await node.admin('/clusters?format=json')) as {
    cluster_statuses?: Array<{ name: string; host_statuses?: unknown[] }>;
  };
  return clusters.cluster_statuses?.find((c) => c.name === cluster)?.host_statuses?.length ?? 0;
}

async function waitHosts(cluster: string, count: number): Promise<void> {
  await waitFor(async () => ((await hostCount(cluster)) === count ? true : undefined), {
    timeoutMs: 30_000,
    what: `${count} host(s) in Envoy's cluster ${cluster}`,
  });
}

/**
 * An upstream's protocol comes from its instances: until they are in the catalog its outbound
 * listener may be a tcp_proxy, and Envoy gets the new listener after the clusters and endpoints.
 * Waits for the HTTP connection manager of the service's outbound listener (its stats exist).
 */
async function waitHttpListener(service: (typeof SERVICES)[number]): Promise<void> {
  const prefix = `http.outbound_${service}_${local[service]}.`;
  await waitFor(async () => ([...(await stats('downstream_cx_total$')).keys()].some((k) => k.startsWith(prefix)) ? true : undefined), {
    timeoutMs: 30_000,
    what: `the HTTP listener of ${service}`,
  });
}

const svids = new Map<string, Svid>();

interface InstanceSpec {
  name: string;
  behaviour: Behaviour;
  tags?: string[];
  meta?: Record<string, string>;
  zone?: string;
}

/** Instances of `service` (HTTPS servers with its SVID) registered in Consul; gone when the test ends. */
async function instances(t: Test, service: Service, specs: InstanceSpec[]): Promise<MeshInstance[]> {
  let svid = svids.get(service);
  if (svid === undefined) {
    svid = await svidFor(signer, id(service));
    svids.set(service, svid);
  }
  const out: MeshInstance[] = [];
  for (const spec of specs) {
    const app = await startMeshInstance(spec.name, svid, spec.behaviour);
    const deregister = await registerInstance(peers.consul.httpAddr, {
      id: spec.name,
      service,
      port: app.port,
      spiffeId: id(service),
      ...(spec.tags === undefined ? {} : { tags: spec.tags }),
      ...(spec.meta === undefined ? {} : { meta: spec.meta }),
      ...(spec.zone === undefined ? {} : { zone: spec.zone }),
    });
    t.teardown(async () => {
      app.release();
      await deregister();
      await app.close();
    });
    out.push(app);
  }
  return out;
}

// --- tests -------------------------------------------------------------------

t.test('two local callers of one service: each presents its own SPIFFE ID (XFCC at the server app)', async (t) => {
  const fromWeb = await waitFor(() => call(local.api).then((r) => (r.status === 200 ? r : undefined)), {
    timeoutMs: 40_000,
    what: 'web -> api',
  });
  const fromAdmin = await waitFor(() => call(adminApi).then((r) => (r.status === 200 ? r : undefined)), {
    timeoutMs: 20_000,
    what: 'admin -> api',
  });
  t.equal(xfccUri((JSON.parse(fromWeb.body) as EchoAnswer).xfcc), id('web'), 'api saw web');
  t.equal(xfccUri((JSON.parse(fromAdmin.body) as EchoAnswer).xfcc), id('admin'), 'api saw admin');
  t.ok((await hostCount(outboundClusterName('api', 'web'))) === 1, 'cluster outbound:api@web');
  t.ok((await hostCount(outboundClusterName('api', 'admin'))) === 1, 'cluster outbound:api@admin');
});

t.test('split 90/10 over 2,000 requests within 3 points; a header match sends only to v2', async (t) => {
  await instances(t, 'split', [
    { name: 'split-v1', behaviour: 'ok', tags: ['v1'], meta: { version: 'v1' } },
    { name: 'split-v2', behaviour: 'ok', tags: ['v2'], meta: { version: 'v2' } },
  ]);
  await waitHosts(subsetClusterName('split', 'v1', 'web'), 1);
  await waitHosts(subsetClusterName('split', 'v2', 'web'), 1);
  await waitHosts(outboundClusterName('split', 'web'), 2);
  await waitHttpListener('split');
  const replies = await many(2_000, 20, () => call(local.split));
  const counts = tally(replies);
  const v2 = ((counts['split-v2'] ?? 0) / 2_000) * 100;
  t.equal((counts['split-v1'] ?? 0) + (counts['split-v2'] ?? 0), 2_000, `every request answered: ${JSON.stringify(counts)}`);
  t.ok(v2 >= 7 && v2 <= 13, `v2 got ${v2.toFixed(2)} % (10 ± 3)`);
  const canary = tally(await many(200, 10, () => call(local.split, '/', { 'x-canary': 'yes' })));
  t.strictSame(canary, { 'split-v2': 200 }, 'x-canary: yes goes to v2 only');
});

t.test('retries: an upstream failing half its requests gives at least 99 % success with 3 attempts', async (t) => {
  const [flaky] = (await instances(t, 'retry', [{ name: 'retry-1', behaviour: 'fail-half' }])) as [MeshInstance];
  await waitHosts(outboundClusterName('retry', 'web'), 1);
  await waitHttpListener('retry');
  const replies = await many(300, 1, () => call(local.retry));
  const ok = replies.filter((r) => r.status === 200).length;
  t.ok(ok / 300 >= 0.99, `${ok} of 300 succeeded`);
  t.ok(flaky.count() >= 2 * ok - 1, `the upstream saw ${flaky.count()} attempts (it failed every other one)`);
  const retried = await clusterStat(outboundClusterName('retry', 'web'), 'upstream_rq_retry');
  t.ok(retried.value >= ok - 1, `Envoy counts the retries: ${retried.name} = ${retried.value}`);
});

t.test('timeout: an upstream slower than the route timeout gives 504', async (t) => {
  const [slow] = (await instances(t, 'slow', [{ name: 'slow-1', behaviour: 'hold' }])) as [MeshInstance];
  await waitHosts(outboundClusterName('slow', 'web'), 1);
  await waitHttpListener('slow');
  const started = Date.now();
  const reply = await call(local.slow);
  t.equal(reply.status, 504, `HTTP ${reply.status} after ${Date.now() - started} ms: ${reply.body.slice(0, 80)}`);
  t.equal(slow.count(), 1, 'the request reached the upstream, which had not answered');
});

t.test('circuit breaker: max pending 1 and 20 concurrent callers; the overflow is rejected and counted', async (t) => {
  const [held] = (await instances(t, 'breaker', [{ name: 'breaker-1', behaviour: 'hold' }])) as [MeshInstance];
  const cluster = outboundClusterName('breaker', 'web');
  await waitHosts(cluster, 1);
  await waitHttpListener('breaker');
  const before = (await clusterStat(cluster, 'upstream_rq_pending_overflow')).value;
  const finished: Reply[] = [];
  const all = Array.from({ length: 20 }, () =>
    call(local.breaker, '/', {}, 30_000).then((r) => {
      finished.push(r);
      return r;
    }),
  );
  await waitFor(async () => (finished.length >= 18 && held.inFlight() >= 1 ? true : undefined), {
    timeoutMs: 20_000,
    what: 'the overflow to be answered while the upstream holds the first request',
  });
  const overflow = await clusterStat(cluster, 'upstream_rq_pending_overflow');
  const overflowStat = overflow.value - before;
  held.release();
  const replies = await Promise.all(all);
  const rejected = replies.filter((r) => r.status === 503 && r.headers.get('x-envoy-overloaded') === 'true').length;
  const ok = replies.filter((r) => r.status === 200).length;
  t.equal(rejected + ok, 20, `every request answered: ${JSON.stringify(tally(replies))}`);
  t.ok(rejected >= 18, `${rejected} rejected with 503 and x-envoy-overloaded`);
  t.equal(overflowStat, rejected, `${overflow.name} counts them (${overflowStat})`);
  t.ok(held.count() <= 2, `the upstream saw ${held.count()} request(s): one active, one pending`);
});

t.test('outlier detection: the instance answering 500 is ejected and later requests avoid it', async (t) => {
  const [bad] = (await instances(t, 'outlier', [
    { name: 'outlier-bad', behaviour: 'error' },
    { name: 'outlier-good-1', behaviour: 'ok' },
    { name: 'outlier-good-2', behaviour: 'ok' },
  ])) as [MeshInstance];
  const cluster = outboundClusterName('outlier', 'web');
  await waitHosts(cluster, 3);
  await waitHttpListener('outlier');
  // Envoy ejects the host on its third consecutive 5xx; the workers' load balancers leave it
  // out once the ejection has reached them, so poll until a round of requests all succeed.
  const ejected = await waitFor(
    async () => {
      const round = await many(6, 1, () => call(local.outlier));
      const stat = await clusterStat(cluster, 'outlier_detection.ejections_active');
      return stat.value >= 1 && round.every((r) => r.status === 200) ? stat : undefined;
    },
    { timeoutMs: 30_000, what: 'the failing instance to be ejected and avoided' },
  );
  t.ok(
    bad.count() >= 3,
    `the failing instance answered ${bad.count()} requests with 500 before its ejection (${ejected.name} = ${ejected.value})`,
  );
  const seen = bad.count();
  const replies = await many(60, 5, () => call(local.outlier));
  t.strictSame(tally(replies), tally(replies.filter((r) => r.status === 200)), 'every later request succeeds');
  t.equal(bad.count(), seen, 'and none reaches the ejected instance');
});

t.test('faults: abort at 100 % returns the configured status; a configured delay is applied', async (t) => {
  const [app] = (await instances(t, 'fault', [{ name: 'fault-1', behaviour: 'ok' }])) as [MeshInstance];
  await waitHosts(outboundClusterName('fault', 'web'), 1);
  await waitHttpListener('fault');
  const aborted = await many(20, 5, () => call(local.fault, '/abort'));
  t.strictSame(
    aborted.map((r) => r.status),
    new Array(20).fill(418),
    'every /abort gets 418',
  );
  t.equal(app.count(), 0, 'an aborted request never reaches the upstream');
  const started = Date.now();
  const delayed = await call(local.fault, '/delay');
  const elapsed = Date.now() - started;
  t.equal(delayed.status, 200, 'the delayed request succeeds');
  t.ok(elapsed >= 400, `the /delay request took ${elapsed} ms (at least the 400 ms delay)`);
  const statName = `http.outbound_fault_${local.fault}.fault.delays_injected`;
  const injected = (await stats('fault\\.delays_injected$')).get(statName) ?? 0;
  t.equal(injected, 1, `Envoy counts the injected delay: ${statName} = ${injected}`);
  t.equal(app.count(), 1, 'the delayed request reached the upstream');
});

t.test('mirroring: the shadow receives copies and its failures do not reach the caller', async (t) => {
  const [main, shadow] = (await instances(t, 'mirror', [
    { name: 'mirror-main', behaviour: 'ok', tags: ['main'] },
    { name: 'mirror-shadow', behaviour: 'error', tags: ['shadow'] },
  ])) as [MeshInstance, MeshInstance];
  await waitHosts(subsetClusterName('mirror', 'main', 'web'), 1);
  await waitHosts(subsetClusterName('mirror', 'shadow', 'web'), 1);
  await waitHttpListener('mirror');
  const replies = await many(30, 3, () => call(local.mirror));
  t.strictSame(tally(replies), { 'mirror-main': 30 }, 'the caller gets every answer from main');
  await waitFor(async () => (shadow.count() >= 30 ? true : undefined), { timeoutMs: 10_000, what: 'the shadow to get 30 copies' });
  t.equal(main.count(), 30, 'main served each request once');
  t.ok(
    shadow.peers().every((p) => p === id('web')),
    'the shadow sees the caller identity (web)',
  );

  // Mirroring to another service, which web does not call itself: the agent watches it.
  const [other] = (await instances(t, 'shadow', [{ name: 'shadow-service', behaviour: 'error' }])) as [MeshInstance];
  await waitHosts(outboundClusterName('shadow', 'web'), 1);
  const toService = await many(20, 2, () => call(local.mirror, '/svc'));
  t.strictSame(tally(toService), { 'mirror-main': 20 }, 'the caller gets every answer from main');
  await waitFor(async () => (other.count() >= 20 ? true : undefined), { timeoutMs: 10_000, what: 'service shadow to get 20 copies' });
  t.equal(other.count(), 20, 'service shadow got a copy of each /svc request');
  t.equal(shadow.count(), 30, 'the subset shadow got no copies of /svc');
});

t.test("locality: traffic stays in the caller's zone and moves over when that zone's instances turn critical", async (t) => {
  await instances(t, 'local', [
    { name: 'local-a1', behaviour: 'ok', zone: 'zone-a' },
    { name: 'local-a2', behaviour: 'ok', zone: 'zone-a' },
    { name: 'local-b1', behaviour: 'ok', zone: 'zone-b' },
  ]);
  const cluster = outboundClusterName('local', 'web');
  await waitHosts(cluster, 3);
  await waitHttpListener('local');
  const before = tally(await many(100, 5, () => call(local.local)));
  t.equal((before['local-a1'] ?? 0) + (before['local-a2'] ?? 0), 100, `all 100 stay in zone-a: ${JSON.stringify(before)}`);
  await setInstanceHealth(peers.consul.httpAddr, 'local-a1', 'fail');
  await setInstanceHealth(peers.consul.httpAddr, 'local-a2', 'fail');
  await waitHosts(cluster, 1);
  const after = tally(await many(50, 5, () => call(local.local)));
  t.strictSame(after, { 'local-b1': 50 }, 'zone-a critical: all go to zone-b');
  await setInstanceHealth(peers.consul.httpAddr, 'local-a1', 'pass');
  await waitHosts(cluster, 2);
  const back = tally(await many(50, 5, () => call(local.local)));
  t.strictSame(back, { 'local-a1': 50 }, 'a zone-a instance passing again: all go back to zone-a');
});
