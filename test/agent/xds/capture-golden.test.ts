/**
 * Golden tests of the transparent-proxy resources: the capture listeners and
 * the passthrough/blackhole clusters (and the captured services' route
 * configs) for representative models. test/golden/xds/capture/*.json are the
 * spec (UPDATE_GOLDEN=1 rewrites them); every resource must be a valid Envoy
 * v3 message and every snapshot must pass checkSnapshot.
 */
import t, { type Test } from 'tap';
import type { ProxyModel } from '../../../agent/model/proxy-model.js';
import { checkSnapshot } from '../../../agent/xds/check-snapshot.js';
import { RESOURCE_KINDS, type ResourceKind, type Snapshot } from '../../../agent/xds/snapshot.js';
import { buildSnapshot } from '../../../agent/xds/snapshot-build.js';
import { XDS_TYPES } from '../../../agent/xds/xds-types.js';
import { checkMessage } from '../../../lib/envoy/protos.js';
import { parsePolicyDocument } from '../../../lib/policy/parse.js';
import type { PolicyDocument } from '../../../lib/policy/schema.js';
import { matchGolden } from '../../support/golden.js';
import { CATALOG, captureModel, id, meshInstance, service } from './fixtures/capture-model.js';
import { fixtureIdentities } from './fixtures/model.js';

/** The type URL of each snapshot kind, as the ADS server serves it. */
const typeOf = (kind: ResourceKind): string => XDS_TYPES.find((x) => x.kind === kind)?.typeUrl ?? '';

function identities() {
  const base = fixtureIdentities();
  const certs = new Map(base.certs);
  certs.set(id('cache'), { chainPem: '-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----\n', keyPem: 'K' });
  return { certs, bundlePem: base.bundlePem };
}

/** The capture resources of a snapshot: both listeners, the two clusters, the captured services' route configs. */
function captureResources(snapshot: Snapshot): Record<string, unknown> {
  const pick = (kind: ResourceKind, keep: (name: string) => boolean) =>
    Object.fromEntries([...snapshot.resources[kind].entries()].filter(([n]) => keep(n)).sort(([a], [b]) => (a < b ? -1 : 1)));
  return {
    listeners: pick('listeners', (n) => n.startsWith('capture:')),
    clusters: pick('clusters', (n) => n.startsWith('capture:')),
    routes: pick('routes', () => true),
  };
}

function check(t: Test, model: ProxyModel, golden: string): Snapshot {
  const snapshot = buildSnapshot(model, identities());
  t.strictSame(checkSnapshot(snapshot), [], 'the snapshot passes its checks');
  for (const kind of RESOURCE_KINDS)
    for (const [name, resource] of snapshot.resources[kind])
      t.doesNotThrow(() => checkMessage(typeOf(kind), resource), `${name} is a valid Envoy v3 message`);
  matchGolden(t, `xds/capture/${golden}`, captureResources(snapshot));
  return snapshot;
}

function doc(source: unknown): PolicyDocument {
  const parsed = parsePolicyDocument(source);
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.issues));
  return parsed.document;
}

t.test('allow, IPv6: http and tcp services, an explicit upstream reused, passthrough default', async (t) => {
  const built = captureModel();
  t.strictSame(built.problems, []);
  const snapshot = check(t, built.model, 'allow-ipv6.json');
  t.strictSame(
    [...snapshot.resources.listeners.keys()].sort(),
    ['capture:inbound', 'capture:outbound', 'inbound:cache', 'inbound:web', 'outbound:api:9001'],
    'captured services get no listener of their own',
  );
  t.ok(snapshot.resources.clusters.has('outbound:orders@web') && snapshot.resources.clusters.has('outbound:db@web'));
  t.ok(snapshot.resources.endpoints.has('outbound:orders') && snapshot.resources.endpoints.has('outbound:db'));
});

t.test('registryOnly, IPv4 only: unknown destinations go to the blackhole, no passthrough cluster', async (t) => {
  const snapshot = check(t, captureModel({ capture: { policy: 'registryOnly', ipv6: false } }).model, 'registry-only.json');
  t.notOk(snapshot.resources.clusters.has('capture:passthrough'));
});

t.test('permissive workload: tls_inspector, an mTLS and a plaintext chain for it, strict for the other', async (t) => {
  const permissive = doc({
    apiVersion: 'mesh.v1',
    kind: 'PeerAuthentication',
    metadata: { name: 'cache-open' },
    spec: { target: { service: 'cache' }, mode: 'permissive' },
  });
  check(t, captureModel({ capture: { ipv6: false }, policies: [permissive] }).model, 'permissive.json');
});

t.test(
  'dual stack: an instance with address6 (lan_ipv6) is matched at both addresses; the mesh hop goes to its main address',
  async (t) => {
    const catalog = CATALOG.map((s) =>
      s.name === 'orders' || s.name === 'db'
        ? service(
            s.name,
            s.instances.map((i) => ({ ...i, address6: `fd00::${i.address.split('.').slice(2).join(':')}` })),
          )
        : s,
    );
    const built = captureModel({ catalog });
    t.strictSame(built.problems, []);
    t.strictSame(
      built.model.capture?.chains.filter((c) => c.service !== 'api'),
      [
        { service: 'db', port: 5432, addresses: ['10.0.3.1', 'fd00::3:1'] },
        { service: 'orders', port: 8080, addresses: ['10.0.2.1', 'fd00::2:1'] },
        { service: 'orders', port: 8081, addresses: ['10.0.2.2', 'fd00::2:2'] },
      ],
    );
    const snapshot = check(t, built.model, 'dual-stack.json');
    const endpoints = JSON.stringify([...snapshot.resources.endpoints.entries()]);
    t.match(endpoints, /10\.0\.2\.1/, 'the endpoints are the main addresses');
    t.notMatch(endpoints, /fd00::2:1|fd00::3:1/, 'never the IPv6 ones (the mesh listeners bind the main address)');
  },
);

t.test('collisions and broken addresses never reach Envoy: one owner per address:port, the rest reported', async (t) => {
  const catalog = [
    ...CATALOG,
    // zeta claims api's 10.0.1.1:9090 (api keeps it: first by name), and has one good address.
    service('zeta', [meshInstance('zeta', 1, '10.0.1.1', 9090, 'http'), meshInstance('zeta', 2, '10.0.7.1', 9090, 'http')]),
    // A host name, a scoped IPv6, an empty address, the outbound listener's own address: left out.
    service('bad', [
      meshInstance('bad', 1, 'bad.example.org', 80, 'tcp'),
      meshInstance('bad', 2, 'fe80::1%eth0', 80, 'tcp'),
      meshInstance('bad', 3, '', 80, 'tcp'),
      meshInstance('bad', 4, '127.0.0.1', 15001, 'tcp'),
    ]),
  ];
  const built = captureModel({ catalog, capture: { ipv6: false } });
  t.strictSame(
    built.problems.map((p) => p.part),
    ['capture', 'capture'],
  );
  t.match(built.problems[0]?.reason, /service bad: 4 instance\(s\) left out/);
  t.match(built.problems[1]?.reason, /service zeta claims 10\.0\.1\.1:9090, which service api already has; api keeps it/);
  check(t, built.model, 'collisions.json');
});
