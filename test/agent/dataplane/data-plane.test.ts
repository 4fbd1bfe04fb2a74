/**
 * The data plane with a fake identity source and no Envoy: rebuilds are
 * coalesced, workloads wait for their SVIDs, a snapshot that fails its checks
 * is refused (the previous one stays served); the broken snapshot comes from
 * a cache decorator the test composes in (test/support/snapshot-edits.ts).
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { createDataPlane, type IdentitySource } from '../../../agent/dataplane/data-plane.js';
import { makeView } from '../../../agent/discovery/catalog-view.js';
import type { IdentityMaterial } from '../../../agent/xds/snapshot.js';
import { systemClock } from '../../../lib/clock.js';
import { createLogger } from '../../../lib/logger.js';
import { FakePolicySource } from '../../fakes/policy-source.js';
import { overridingCache } from '../../support/snapshot-edits.js';
import { tempDir } from '../../support/temp-dir.js';
import { createTestCa } from '../../support/test-ca.js';
import { apiInstance, policyDoc, TD, WEB, web } from './policy-fixtures.js';

function fakeIdentities() {
  const certs = new Map<string, IdentityMaterial>();
  let bundlePem = '';
  const listeners = new Set<() => void>();
  let wanted: readonly string[] = [];
  const source: IdentitySource = {
    start: async () => undefined,
    setWanted: (ids) => {
      wanted = ids;
    },
    current: () => ({ certs, bundlePem }),
    onChange: (l) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    states: () => ({
      node: { spiffeId: 'spiffe://example.org/mesh/node/n1', failures: 0, state: 'ready' },
      workloads: wanted.map((spiffeId) => ({ spiffeId, failures: 0, state: certs.has(spiffeId) ? 'ready' : 'pending' })),
      bundle: { sequence: 0, roots: 0 },
      controlPlane: { address: '127.0.0.1:1', state: 'connected' },
    }),
    stop: () => undefined,
  };
  return {
    source,
    wanted: () => wanted,
    set(id: string, m: IdentityMaterial | undefined, bundle?: string) {
      if (m === undefined) certs.delete(id);
      else certs.set(id, m);
      if (bundle !== undefined) bundlePem = bundle;
      for (const l of listeners) l();
    },
  };
}

t.test('builds, waits for SVIDs, refuses broken snapshots', async (t) => {
  const dir = await tempDir(t, 'dp-');
  const lines: string[] = [];
  const ids = fakeIdentities();
  const ca = await createTestCa(TD);
  const cache = overridingCache();
  const dp = createDataPlane({
    nodeName: 'vm1',
    trustDomain: TD,
    adsSocket: path.join(dir, 'ads.sock'),
    clock: systemClock,
    log: createLogger({ level: 'debug', sink: { write: (l) => lines.push(l) } }),
    identities: ids.source,
    cache,
  });
  const served = () => dp.cache.current('vm1');
  dp.update({ workloads: [web] });
  await dp.start();
  t.teardown(() => dp.stop());
  t.same(ids.wanted(), [WEB], 'the workload SPIFFE IDs are wanted');
  t.equal((await stat(path.join(dir, 'ads.sock'))).mode & 0o777, 0o660, 'the ADS socket is 0660 (agent and Envoy group)');
  t.equal(served(), undefined, 'no bundle yet: the snapshot fails its checks and nothing is served');
  t.match(dp.status().xds.lastError, /ROOTCA|empty|secret/i);

  ids.set('x', undefined, ca.bundlePem);
  await dp.settled();
  const first = served();
  t.ok(first, 'with a bundle, a snapshot is served');
  t.equal(first?.snapshot.resources.listeners.size, 0, 'web is not served without its SVID');
  t.same(dp.status().modelProblems, [{ workload: 'web', part: 'inbound', reason: `waiting for its SVID (${WEB})` }]);

  ids.set(WEB, ca.issue(WEB));
  dp.update({ view: makeView(2, [{ name: 'api', source: 'consul', instances: [] }]) });
  dp.update({ view: makeView(3, [{ name: 'api', source: 'consul', instances: [] }]) });
  await dp.settled();
  const second = served();
  t.equal(second?.snapshot.resources.listeners.size, 2, 'inbound and outbound listeners');
  t.same(dp.status().modelProblems, []);
  t.same(dp.status().upstreams, [{ service: 'api', localPort: 9001, caller: 'web', protocol: 'tcp', endpoints: 0, skipped: 0 }]);
  t.equal(dp.status().envoy.state, 'external');
  t.equal(dp.status().xds.snapshotVersion, second?.version, 'status shows the version the cache serves');

  // A broken listener (pointing at a cluster that does not exist) is refused; the last good snapshot stays.
  cache.override('listeners', 'inbound:web', {
    name: 'inbound:web',
    address: { socket_address: { address: '0.0.0.0', port_value: 1 } },
    filter_chains: [
      {
        filters: [
          {
            name: 'envoy.filters.network.tcp_proxy',
            typed_config: {
              '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy',
              stat_prefix: 'x',
              cluster: 'nope',
            },
          },
        ],
      },
    ],
  });
  dp.update({});
  await dp.settled();
  t.equal(served()?.version, second?.version, 'refused: still the previous snapshot');
  t.match(dp.status().xds.lastError, /nope/);
  t.ok(lines.some((l) => l.includes('MESH_E_XDS_SNAPSHOT_INVALID')));
  cache.override('listeners', 'inbound:web', undefined);
  dp.update({});
  await dp.settled();
  t.equal(served()?.version, second?.version, 'back to the same content: same version');
  t.equal(dp.status().xds.lastError, undefined);
});

t.test('policy from a FakePolicySource: rebuilt on change, each resource with its state in status', async (t) => {
  const dir = await tempDir(t, 'dp-policy-');
  const ids = fakeIdentities();
  const ca = await createTestCa(TD);
  const policy = new FakePolicySource();
  const dp = createDataPlane({
    nodeName: 'vm1',
    trustDomain: TD,
    adsSocket: path.join(dir, 'ads.sock'),
    clock: systemClock,
    log: createLogger({ level: 'error', sink: { write: () => undefined } }),
    identities: ids.source,
    policy,
  });
  dp.update({ workloads: [web], view: makeView(1, [{ name: 'api', source: 'consul', instances: [] }]) });
  ids.set(WEB, ca.issue(WEB), ca.bundlePem);
  await dp.start();
  t.teardown(() => dp.stop());
  t.ok(policy.started, 'the data plane starts its policy source');
  t.same(policy.interest, { services: ['api', 'web'], spiffeIds: [WEB] }, 'and tells it what the node serves and calls');
  t.same(dp.status().policy, { revision: 0, origin: 'none', resources: [] });

  const doc = policyDoc;
  policy.set([
    doc('TrafficPolicy', 'api-defaults', { service: 'api', connectTimeout: '2s' }),
    doc('TrafficPolicy', 'db-defaults', { service: 'db' }),
    doc('AuthorizationPolicy', 'web-authz', { target: { service: 'web' }, defaultAction: 'allow' }),
    doc('RateLimit', 'broken', { target: { service: 'web' }, requestsPerSecond: 0 }),
  ]);
  await dp.settled();
  const states = () => dp.status().policy?.resources.map((r) => `${r.kind}/${r.name}:${r.state}`);
  t.equal(dp.status().policy?.revision, 1);
  t.equal(dp.status().policy?.origin, 'controlplane');
  t.same(states(), [
    'AuthorizationPolicy/web-authz:applied',
    'RateLimit/broken:invalid',
    'TrafficPolicy/api-defaults:unresolved',
    'TrafficPolicy/db-defaults:unused',
  ]);
  t.match(dp.status().policy?.resources[1]?.reason, /spec\.requestsPerSecond/);
  t.same(
    dp.policyInForce().map((r) => r.name),
    ['api-defaults', 'db-defaults', 'web-authz', 'broken'],
    'every received resource is in force (nothing rolled back)',
  );

  dp.update({ view: makeView(2, [{ name: 'api', source: 'consul', instances: [apiInstance('api-1')] }]) });
  await dp.settled();
  t.equal(dp.status().policy?.resources[2]?.state, 'applied', 'an instance of api in the catalog: the TrafficPolicy resolves');
});

t.test('policy from the source: a permissive workload gets a plaintext chain and an access log, and status says so', async (t) => {
  const dir = await tempDir(t, 'dp-');
  const ids = fakeIdentities();
  const ca = await createTestCa(TD);
  const policy = new FakePolicySource();
  const accessLogPath = path.join(dir, 'access-inbound.log');
  const dp = createDataPlane({
    nodeName: 'vm1',
    trustDomain: TD,
    adsSocket: path.join(dir, 'ads.sock'),
    clock: systemClock,
    log: createLogger({ level: 'error', sink: { write: () => undefined } }),
    identities: ids.source,
    policy,
    accessLogPath,
  });
  dp.update({ workloads: [web] });
  await dp.start();
  t.teardown(() => dp.stop());
  ids.set(WEB, ca.issue(WEB), ca.bundlePem);
  await dp.settled();
  t.equal(dp.status().plaintextAccepted, undefined, 'strict by default');
  policy.set([
    {
      apiVersion: 'mesh.v1',
      kind: 'PeerAuthentication',
      metadata: { name: 'web-open' },
      spec: { target: { service: 'web' }, mode: 'permissive' },
    },
  ]);
  await dp.settled();
  t.same(dp.status().plaintextAccepted, [{ workload: 'web', policy: 'web-open' }]);
  const listener = dp.cache.current('vm1')?.snapshot.resources.listeners.get('inbound:web') as Record<string, unknown>;
  const chains = listener.filter_chains as Array<{ name: string; filter_chain_match: { transport_protocol: string } }>;
  t.same(
    chains.map((c) => [c.name, c.filter_chain_match.transport_protocol]),
    [
      ['inbound:web:mtls', 'tls'],
      ['inbound:web:plaintext', 'raw_buffer'],
    ],
  );
  t.match(JSON.stringify(listener), accessLogPath, 'the access log goes to the configured file');
});

t.test('capture on: the capture listeners are served, captured services are extra services, not status upstreams', async (t) => {
  const dir = await tempDir(t, 'dp-capture-');
  const ids = fakeIdentities();
  const ca = await createTestCa(TD);
  const dp = createDataPlane({
    nodeName: 'vm1',
    trustDomain: TD,
    adsSocket: path.join(dir, 'ads.sock'),
    clock: systemClock,
    log: createLogger({ level: 'warn', sink: { write: () => {} } }),
    identities: ids.source,
    capture: { outboundPort: 15001, inboundPort: 15006, ipv6: false, policy: 'allow', outboundEnabled: true, inboundEnabled: true },
  });
  ids.set(WEB, ca.issue(WEB), ca.bundlePem);
  const orders = { ...apiInstance('orders-1'), address: '127.0.0.3', spiffeId: `spiffe://${TD}/ns/default/sa/orders` };
  dp.update({
    workloads: [web],
    view: makeView(1, [
      { name: 'api', source: 'consul', instances: [apiInstance('api-1')] },
      { name: 'orders', source: 'consul', instances: [orders] },
    ]),
  });
  let extraChanged = 0;
  dp.onExtraServices?.(() => extraChanged++);
  await dp.start();
  t.teardown(() => dp.stop());
  await dp.settled();
  const snapshot = dp.cache.current('vm1')?.snapshot;
  t.strictSame([...(snapshot?.resources.listeners.keys() ?? [])].sort(), [
    'capture:inbound',
    'capture:outbound',
    'inbound:web',
    'outbound:api:9001',
  ]);
  t.ok(snapshot?.resources.clusters.has('outbound:orders@web'), 'the captured service has its cluster');
  t.strictSame(dp.extraServices?.(), ['orders'], 'watched and named in the policy interest');
  t.equal(extraChanged, 1);
  t.strictSame(
    dp.status().upstreams.map((u) => u.service),
    ['api'],
    'status lists explicit upstreams only',
  );
  t.strictSame(dp.status().modelProblems, []);
});

t.test('metrics: each rebuild is timed; model() is the model of the latest build', async (t) => {
  const dir = await tempDir(t, 'dp-');
  const ids = fakeIdentities();
  const ca = await createTestCa(TD);
  const builds: number[] = [];
  const dp = createDataPlane({
    nodeName: 'vm1',
    trustDomain: TD,
    adsSocket: path.join(dir, 'ads.sock'),
    clock: systemClock,
    log: createLogger({ level: 'error', sink: { write: () => {} } }),
    identities: ids.source,
    metrics: { recordXds: () => {}, recordSnapshotBuild: (ms) => builds.push(ms) },
  });
  t.equal(dp.model?.(), undefined, 'no model before the first build');
  dp.update({ workloads: [web] });
  await dp.start();
  t.teardown(() => dp.stop());
  t.equal(builds.length, 1, 'the first build was timed');
  t.same(
    dp.model?.()?.workloads.map((w) => w.name),
    [],
    'web waits for its SVID',
  );
  ids.set(WEB, ca.issue(WEB), ca.bundlePem);
  await dp.settled();
  t.equal(builds.length, 2);
  t.ok(
    builds.every((ms) => ms >= 0),
    `build times ${builds.map((ms) => ms.toFixed(2)).join(', ')} ms`,
  );
  t.same(
    dp.model?.()?.workloads.map((w) => w.name),
    ['web'],
    'with its SVID web is in the model metrics label from',
  );
  const view = makeView(1, [{ name: 'api', source: 'consul', instances: [apiInstance('api-1')] }]);
  dp.update({ view });
  await dp.settled();
  t.match(dp.status().xds.lastChange, { viewVersion: 1, startedMs: Number, servedMs: Number }, 'the new view: timed until served');
  t.equal(dp.status().xds.lastChange?.unchanged, undefined);
  dp.update({ view: makeView(2, Object.values(view.services)) });
  await dp.settled();
  t.match(dp.status().xds.lastChange, { viewVersion: 2, startedMs: Number, unchanged: true }, 'an equal view: nothing new for Envoy');
  t.equal(dp.status().xds.lastChange?.servedMs, undefined);
});
