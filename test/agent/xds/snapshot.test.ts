import t from 'tap';
import type { ModelUpstream, ProxyModel } from '../../../agent/model/proxy-model.js';
import { BuildMemo } from '../../../agent/xds/build-memo.js';
import { checkSnapshot } from '../../../agent/xds/check-snapshot.js';
import type { XdsResource } from '../../../agent/xds/resources/common.js';
import { buildOutboundCluster } from '../../../agent/xds/resources/outbound-cluster.js';
import { NO_PEER_SAN } from '../../../agent/xds/resources/peer-sans.js';
import { emptyResources, makeSnapshot, RESOURCE_KINDS, type ResourceKind, type Snapshot } from '../../../agent/xds/snapshot.js';
import { buildSnapshot } from '../../../agent/xds/snapshot-build.js';
import { checkMessage } from '../../../lib/envoy/protos.js';
import { TypeUrl } from '../../../lib/envoy/type-urls.js';
import { stableJson } from '../../../lib/stable-json.js';
import { API_ID, fixtureIdentities, fixtureModel, WEB_ID } from './fixtures/model.js';

function changedVersions(a: Snapshot, b: Snapshot): string[] {
  const changed: string[] = [];
  for (const kind of RESOURCE_KINDS) {
    const names = new Set([...a.versions[kind].keys(), ...b.versions[kind].keys()]);
    for (const name of names) if (a.versions[kind].get(name) !== b.versions[kind].get(name)) changed.push(`${kind}/${name}`);
  }
  return changed.sort();
}

function withUpstream(model: ProxyModel, service: string, change: (u: ModelUpstream) => ModelUpstream): ProxyModel {
  return { ...model, upstreams: model.upstreams.map((u) => (u.service === service ? change(u) : u)) };
}

/** A mutable copy of a snapshot's resources, for building broken snapshots. */
function resourcesOf(snapshot: Snapshot) {
  const copy = emptyResources();
  for (const kind of RESOURCE_KINDS) for (const [name, r] of snapshot.resources[kind]) copy[kind].set(name, r);
  return copy;
}

const good = buildSnapshot(fixtureModel(), fixtureIdentities());

t.test('versioning', async (t) => {
  t.test('the same model gives the same versions', async (t) => {
    const again = buildSnapshot(fixtureModel(), fixtureIdentities());
    t.equal(again.version, good.version);
    t.strictSame(changedVersions(good, again), []);
    t.match(good.version, /^[0-9a-f]{64}$/);
  });

  t.test('the order of catalog instances does not matter', async (t) => {
    const reordered = withUpstream(fixtureModel(), 'api', (u) => ({ ...u, instances: [...u.instances].reverse() }));
    t.equal(buildSnapshot(reordered, fixtureIdentities()).version, good.version);
  });

  t.test('one endpoint change changes only that resource and the snapshot', async (t) => {
    const model = withUpstream(fixtureModel(), 'api', (u) => ({
      ...u,
      instances: u.instances.map((i) => (i.address === '10.0.0.12' ? { ...i, healthy: true } : i)),
    }));
    const next = buildSnapshot(model, fixtureIdentities());
    t.strictSame(changedVersions(good, next), ['endpoints/outbound:api']);
    t.not(next.version, good.version);
  });

  t.test('a rotated certificate changes only its secret', async (t) => {
    const identities = fixtureIdentities();
    const certs = new Map(identities.certs);
    certs.set(WEB_ID, { chainPem: 'NEW CHAIN', keyPem: 'NEW KEY' });
    const next = buildSnapshot(fixtureModel(), { ...identities, certs });
    t.strictSame(changedVersions(good, next), [`secrets/${WEB_ID}`]);
    t.not(next.version, good.version);
  });

  t.test('a new instance changes only the endpoints; a new accepted identity (secure naming) only the cluster', async (t) => {
    const other = 'spiffe://example.org/ns/default/sa/api-canary';
    const model = withUpstream(fixtureModel(), 'api', (u) => ({
      ...u,
      instances: [...u.instances, { address: '10.0.0.13', meshPort: 15002, spiffeId: other, weight: 1, healthy: true }],
    }));
    t.strictSame(changedVersions(good, buildSnapshot(model, fixtureIdentities())), ['endpoints/outbound:api']);
    const widened = withUpstream(fixtureModel(), 'api', (u) => ({ ...u, acceptedIdentities: [...u.acceptedIdentities, other] }));
    t.strictSame(changedVersions(good, buildSnapshot(widened, fixtureIdentities())), ['clusters/outbound:api@web']);
  });

  t.test('snapshots are immutable', async (t) => {
    const listener = good.resources.listeners.get('inbound:web') as XdsResource;
    t.ok(Object.isFrozen(listener));
    t.throws(() => {
      (listener as { name: string }).name = 'changed';
    });
  });

  t.test('stable JSON ignores key order', async (t) => {
    t.equal(stableJson({ b: 1, a: { d: [1, { y: 2, x: 1 }], c: undefined } }), '{"a":{"d":[1,{"x":1,"y":2}]},"b":1}');
  });
});

t.test('checkSnapshot', async (t) => {
  t.test('a consistent snapshot has no problems', async (t) => {
    t.strictSame(checkSnapshot(good), []);
  });

  t.test('an EDS cluster without its ClusterLoadAssignment', async (t) => {
    const r = resourcesOf(good);
    r.endpoints.delete('outbound:api');
    t.strictSame(checkSnapshot(makeSnapshot(r)), ['cluster "outbound:api@web": no ClusterLoadAssignment "outbound:api"']);
  });

  t.test('a listener referencing a missing route configuration', async (t) => {
    const r = resourcesOf(good);
    r.routes.delete('outbound:api@web');
    t.strictSame(checkSnapshot(makeSnapshot(r)), ['listener "outbound:api:9001": route configuration "outbound:api@web" does not exist']);
  });

  t.test('transport sockets referencing missing secrets', async (t) => {
    const identities = fixtureIdentities();
    const certs = new Map(identities.certs);
    certs.delete(WEB_ID);
    const problems = checkSnapshot(buildSnapshot(fixtureModel(), { ...identities, certs }));
    t.strictSame(problems, [
      `listener "inbound:web": secret "${WEB_ID}" does not exist`,
      `cluster "outbound:api@web": secret "${WEB_ID}" does not exist`,
      `cluster "outbound:cache@web": secret "${WEB_ID}" does not exist`,
    ]);

    const r = resourcesOf(good);
    r.secrets.delete('ROOTCA');
    t.equal(
      checkSnapshot(makeSnapshot(r)).filter((p) => p.includes('secret "ROOTCA" does not exist')).length,
      5,
      'every TLS context needs the bundle',
    );
  });

  t.test('missing clusters referenced by routes and tcp_proxy', async (t) => {
    const r = resourcesOf(good);
    r.clusters.delete('outbound:api@web');
    r.clusters.delete('outbound:cache@web');
    r.endpoints.clear();
    t.strictSame(checkSnapshot(makeSnapshot(r)), [
      'listener "outbound:cache:6380": cluster "outbound:cache@web" does not exist',
      'route configuration "outbound:api@web": cluster "outbound:api@web" does not exist',
    ]);
  });

  t.test('duplicate names with different content', async (t) => {
    const model = fixtureModel();
    const api = model.upstreams[0] as ModelUpstream;
    const dup: ProxyModel = { ...model, upstreams: [...model.upstreams, { ...api, acceptedIdentities: [WEB_ID], localPort: 9002 }] };
    const problems = checkSnapshot(buildSnapshot(dup, fixtureIdentities()));
    t.strictSame(problems, ['clusters: duplicate name "outbound:api@web" with different content']);

    const same: ProxyModel = { ...model, upstreams: [...model.upstreams, { ...api, localPort: 9002 }] };
    t.strictSame(checkSnapshot(buildSnapshot(same, fixtureIdentities())), [], 'an identical resource built twice is fine');
  });

  t.test('secrets with empty PEM', async (t) => {
    const identities = fixtureIdentities();
    const certs = new Map(identities.certs);
    certs.set(WEB_ID, { chainPem: '', keyPem: ' ' });
    t.strictSame(checkSnapshot(buildSnapshot(fixtureModel(), { certs, bundlePem: '' })), [
      `secret "${WEB_ID}": empty certificate chain`,
      `secret "${WEB_ID}": empty private key`,
      'secret "ROOTCA": empty trust bundle',
    ]);
  });

  t.test('a resource stored under another name', async (t) => {
    const r = resourcesOf(good);
    r.routes.set('outbound:other', r.routes.get('outbound:api@web') as XdsResource);
    t.strictSame(checkSnapshot(makeSnapshot(r)), ['routes: key "outbound:other" holds a resource named "outbound:api@web"']);
  });

  t.test('two listeners on one address', async (t) => {
    const model = fixtureModel();
    const clash: ProxyModel = { ...model, upstreams: model.upstreams.map((u) => ({ ...u, localPort: 9001 })) };
    t.strictSame(checkSnapshot(buildSnapshot(clash, fixtureIdentities())), [
      'listeners "outbound:api:9001" and "outbound:cache:9001" both bind 127.0.0.1:9001',
    ]);
  });

  t.test('an upstream whose caller is not a local workload', async (t) => {
    const model = withUpstream(fixtureModel(), 'cache', (u) => ({ ...u, workload: 'ghost' }));
    t.strictSame(checkSnapshot(buildSnapshot(model, fixtureIdentities())), [
      'upstream cache on port 6380: caller workload "ghost" is not in the model',
    ]);
  });
});

t.test('an upstream with no accepted identity accepts no peer', async (t) => {
  const cluster = buildOutboundCluster(
    { service: 'empty', localPort: 1, protocol: 'http', workload: 'web', instances: [], acceptedIdentities: [] },
    WEB_ID,
  );
  checkMessage(TypeUrl.Cluster, cluster);
  const json = JSON.stringify(cluster);
  t.match(json, `{"san_type":"URI","matcher":{"exact":"${NO_PEER_SAN}"}}`);
  t.notMatch(json, API_ID);
});

t.test('every kind has a type', async (t) => {
  const kinds: ResourceKind[] = [...RESOURCE_KINDS];
  t.equal(kinds.length, 5);
});

t.test('BuildMemo: same versions as a fresh build; unchanged resources are reused, changed ones rebuilt', async (t) => {
  const memo = new BuildMemo();
  const first = buildSnapshot(fixtureModel(), fixtureIdentities(), memo);
  t.equal(first.version, good.version, 'memoized build = plain build');
  const changed = withUpstream(fixtureModel(), 'api', (u) => ({ ...u, instances: u.instances.slice(1) }));
  const second = buildSnapshot(changed, fixtureIdentities(), memo);
  t.equal(second.version, buildSnapshot(changed, fixtureIdentities()).version, 'after a change too');
  t.equal(
    second.resources.clusters.get('outbound:cache@web'),
    first.resources.clusters.get('outbound:cache@web'),
    'untouched cluster object reused',
  );
  t.not(second.resources.endpoints.get('outbound:api'), first.resources.endpoints.get('outbound:api'), 'changed endpoints rebuilt');
  t.same(checkSnapshot(second), []);
});
