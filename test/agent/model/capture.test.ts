/**
 * The model's capture block (agent/model/capture.ts via buildModel): the
 * caller rule, capture-only upstreams, chains by destination, secure naming,
 * a hostile or broken catalog, and the workloads captured inbound.
 */
import t from 'tap';
import { canonicalAddress, captureChains } from '../../../agent/model/capture.js';
import type { ProxyModel } from '../../../agent/model/proxy-model.js';
import { checkSnapshot } from '../../../agent/xds/check-snapshot.js';
import { buildSnapshot } from '../../../agent/xds/snapshot-build.js';
import { parsePolicyDocument } from '../../../lib/policy/parse.js';
import type { PolicyDocument } from '../../../lib/policy/schema.js';
import { CATALOG, captureModel, id, meshInstance, service } from '../xds/fixtures/capture-model.js';
import { fixtureIdentities } from '../xds/fixtures/model.js';

function doc(source: unknown): PolicyDocument {
  const parsed = parsePolicyDocument(source);
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.issues));
  return parsed.document;
}

t.test('the caller: first workload by name that does not opt out; explicit upstreams kept, the rest capture-only', async (t) => {
  const { model, problems } = captureModel();
  t.strictSame(problems, []);
  t.equal(model.capture?.caller, 'web', 'cache opts out of outbound capture');
  t.strictSame(
    model.upstreams.map((u) => [u.service, u.workload, u.localPort, u.captureOnly === true]),
    [
      ['api', 'web', 9001, false],
      ['db', 'web', 0, true],
      ['orders', 'web', 0, true],
    ],
    'legacy (no SPIFFE ID) is no mesh service',
  );
  t.strictSame(model.capture?.chains, [
    { service: 'api', port: 9090, addresses: ['10.0.1.1', 'fd00::a:2'] },
    { service: 'db', port: 5432, addresses: ['10.0.3.1'] },
    { service: 'orders', port: 8080, addresses: ['10.0.2.1'] },
    { service: 'orders', port: 8081, addresses: ['10.0.2.2'] },
  ]);
  t.strictSame(model.capture?.inboundWorkloads, ['cache', 'web']);
  t.equal(model.upstreams.find((u) => u.service === 'db')?.protocol, 'tcp');
});

t.test('the configured caller wins; an unknown one or one without its SVID means no mesh chains, reported', async (t) => {
  t.equal(captureModel({ capture: { caller: 'cache' } }).model.capture?.caller, 'cache', 'even one that opts out itself');
  const unknown = captureModel({ capture: { caller: 'nobody' } });
  t.equal(unknown.model.capture?.caller, '');
  t.strictSame(unknown.model.capture?.chains, []);
  t.notOk(unknown.model.upstreams.some((u) => u.captureOnly === true));
  t.match(unknown.problems, [{ part: 'capture', reason: /caller "nobody" is no workload of this node/ }]);
});

t.test('outbound or inbound capture off: no chains, or no inbound workloads', async (t) => {
  const noOut = captureModel({ capture: { outboundEnabled: false } }).model;
  t.equal(noOut.capture?.caller, '');
  t.strictSame(noOut.capture?.chains, []);
  t.strictSame(noOut.upstreams.length, 1, 'only the explicit upstream');
  t.strictSame(captureModel({ capture: { inboundEnabled: false } }).model.capture?.inboundWorkloads, []);
});

t.test('secure naming decides who serves a captured service: refused instances are in no chain', async (t) => {
  const catalog = [
    ...CATALOG.filter((s) => s.name !== 'db'),
    service('db', [
      meshInstance('db', 1, '10.0.3.1', 5432, 'tcp'),
      { ...meshInstance('db', 2, '10.0.3.2', 5432, 'tcp'), spiffeId: id('evil') },
    ]),
  ];
  const built = captureModel({ catalog });
  t.strictSame(built.model.capture?.chains.find((c) => c.service === 'db')?.addresses, ['10.0.3.1']);
  t.match(built.problems, [{ workload: 'web', part: 'upstream', reason: /upstream db: 1 catalog instance\(s\) left out/ }]);
  const allowEvil = doc({
    apiVersion: 'mesh.v1',
    kind: 'ServiceIdentity',
    metadata: { name: 'db-ids' },
    spec: { service: 'db', namespace: 'default', allowedIdentities: [id('db'), id('evil')] },
  });
  const allowed = captureModel({ catalog, policies: [allowEvil] });
  t.strictSame(allowed.model.capture?.chains.find((c) => c.service === 'db')?.addresses, ['10.0.3.1', '10.0.3.2']);
});

t.test('a mirror-only upstream of the caller is widened to capture-only (it needs its route config now)', async (t) => {
  const mirror = doc({
    apiVersion: 'mesh.v1',
    kind: 'TrafficRoute',
    metadata: { name: 'api-route' },
    spec: { service: 'api', http: [{ name: 'shadow', destinations: [{}], mirror: { service: 'orders', percent: 10 } }] },
  });
  const built = captureModel({ policies: [mirror] });
  const orders = built.model.upstreams.filter((u) => u.service === 'orders');
  t.equal(orders.length, 1);
  t.equal(orders[0]?.captureOnly, true);
  t.equal(orders[0]?.mirrorOnly, undefined);
  const snapshot = buildSnapshot(built.model, fixtureIdentities());
  t.ok(snapshot.resources.routes.has('outbound:orders@web'));
});

t.test('inbound: opt-outs and app ports that clash are left out, reported', async (t) => {
  const built = captureModel({ capture: { inboundPort: 6379 } });
  t.strictSame(built.model.capture?.inboundWorkloads, ['web']);
  t.match(built.problems, [
    { workload: 'cache', part: 'capture', reason: /app port 6379 is already used by the inbound capture listener/ },
  ]);
});

t.test('a workload on a capture listener port is left out, never the capture listener', async (t) => {
  const built = captureModel({ capture: { inboundPort: 18080 } });
  t.notOk(built.model.workloads.some((w) => w.name === 'web'));
  t.match(built.problems, [
    { workload: 'web', part: 'inbound', reason: /mesh port 18080 is already used by the inbound capture listener/ },
  ]);
  t.equal(built.model.capture?.caller, '', 'web has no listener, so captured calls cannot present it');
  t.strictSame(checkSnapshot(buildSnapshot(built.model, fixtureIdentities())), []);
});

t.test('canonicalAddress', async (t) => {
  t.equal(canonicalAddress('10.0.0.1'), '10.0.0.1');
  t.equal(canonicalAddress('FD00:0:0::0001'), 'fd00::1');
  t.equal(canonicalAddress('::ffff:10.0.0.1'), '10.0.0.1', 'IPv4-mapped is the IPv4 address');
  t.equal(canonicalAddress('::FFFF:0a00:0001'), '10.0.0.1');
  t.equal(canonicalAddress('::ffff:0.0.0.0'), undefined);
  for (const bad of ['', '0.0.0.0', '::', 'api.example.org', 'fe80::1%eth0', '10.0.0.256', '010.0.0.1'])
    t.equal(canonicalAddress(bad), undefined, JSON.stringify(bad));
});

t.test('captureChains: one owner per address:port whatever the input order; one service may list an address twice', async (t) => {
  const a = { service: 'a', instances: [{ id: 'a1', address: '10.0.0.1', appPort: 80 }] };
  const b = {
    service: 'b',
    instances: [
      { id: 'b1', address: '10.0.0.1', appPort: 80 },
      { id: 'b2', address: '10.0.0.2', appPort: 80 },
      { id: 'b3', address: '10.0.0.2', appPort: 80 },
    ],
  };
  const one = captureChains([b, a], 15001);
  t.strictSame(one, captureChains([a, b], 15001));
  t.strictSame(one.chains, [
    { service: 'a', port: 80, addresses: ['10.0.0.1'] },
    { service: 'b', port: 80, addresses: ['10.0.0.2'] },
  ]);
  t.equal(one.problems.length, 1);
  const spellings = captureChains(
    [
      { service: 'a', instances: [{ id: 'a1', address: '10.0.0.5', appPort: 80 }] },
      { service: 'b', instances: [{ id: 'b1', address: '::ffff:10.0.0.5', appPort: 80 }] },
    ],
    15001,
  );
  t.strictSame(spellings.chains, [{ service: 'a', port: 80, addresses: ['10.0.0.5'] }], 'two spellings of one address collide');
  const same = captureChains([{ service: 'a', instances: [{ id: 'x', address: '::1', appPort: 15001 }] }], 15001);
  t.strictSame(same.chains, [], "the outbound listener's own address is its loop guard's");
});

t.test('captureChains: an instance with address6 contributes both addresses to its chain, IPv6 canonical', async (t) => {
  const { chains, problems } = captureChains(
    [
      {
        service: 'api',
        instances: [
          { id: 'api-vm2', address: '10.0.0.2', address6: 'FD00:77:0::2', appPort: 8080 },
          { id: 'api-vm3', address: '10.0.0.3', appPort: 8080 },
        ],
      },
    ],
    15001,
  );
  t.strictSame(chains, [{ service: 'api', port: 8080, addresses: ['10.0.0.2', '10.0.0.3', 'fd00:77::2'] }]);
  t.strictSame(problems, []);
});

t.test('captureChains: address6 follows the same collision rules, across services and families', async (t) => {
  const a = { service: 'a', instances: [{ id: 'a1', address: '10.0.0.1', address6: 'fd00::1', appPort: 80 }] };
  const b = {
    service: 'b',
    instances: [
      { id: 'b1', address: '10.0.0.2', address6: 'fd00:0::1', appPort: 80 },
      { id: 'b2', address: '10.0.0.3', address6: '::ffff:10.0.0.1', appPort: 80 },
      { id: 'b3', address: '10.0.0.4', address6: 'fd00::1', appPort: 81 },
    ],
  };
  const one = captureChains([b, a], 15001);
  t.strictSame(one, captureChains([a, b], 15001), 'whatever the input order');
  t.strictSame(one.chains, [
    { service: 'a', port: 80, addresses: ['10.0.0.1', 'fd00::1'] },
    { service: 'b', port: 80, addresses: ['10.0.0.2', '10.0.0.3'] },
    { service: 'b', port: 81, addresses: ['10.0.0.4', 'fd00::1'] },
  ]);
  t.strictSame(one.problems, ['capture: service b claims [fd00::1]:80, 10.0.0.1:80, which service a already has; a keeps it']);
  const bad = captureChains(
    [{ service: 'c', instances: [{ id: 'c1', address: '10.0.0.5', address6: 'fe80::1%eth0', appPort: 80 }] }],
    15001,
  );
  t.strictSame(bad.chains, [{ service: 'c', port: 80, addresses: ['10.0.0.5'] }], 'a scoped address6 is left out, the main one kept');
  t.match(bad.problems, [/c1 \("fe80::1%eth0", port 80\)/]);
});

t.test('checkSnapshot refuses two capture chains matching the same destination (Envoy would reject the listener)', async (t) => {
  const { model } = captureModel();
  const capture = model.capture;
  if (capture === undefined) throw new Error('no capture');
  const broken: ProxyModel = {
    ...model,
    capture: { ...capture, chains: [...capture.chains, { service: 'db', port: 9090, addresses: ['10.0.1.1'] }] },
  };
  t.match(checkSnapshot(buildSnapshot(broken, fixtureIdentities())), [
    /listener "capture:outbound": filter chains capture:outbound:api:9090 and capture:outbound:db:9090 match the same connections/,
  ]);
});
