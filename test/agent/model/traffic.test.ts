/**
 * TrafficRoute/TrafficPolicy in the model: subsets resolved by tags and meta,
 * one upstream per caller (each with its own clusters), mirror-only upstreams,
 * the local zone only with preferLocalZone and a known zone.
 */
import t from 'tap';
import { type CatalogInstance, makeView } from '../../../agent/discovery/catalog-view.js';
import { buildModel } from '../../../agent/model/build-model.js';
import { inSubset, resolveTraffic } from '../../../agent/model/traffic.js';
import { fixtureWorkload, trafficDocuments, trafficModel } from '../xds/fixtures/traffic-model.js';

const TD = 'example.org';
const id = (sa: string) => `spiffe://${TD}/ns/default/sa/${sa}`;

function instance(n: number, tags: string[], meta: Record<string, string>, zone = ''): CatalogInstance {
  return {
    id: `api-${n}`,
    node: `n${n}`,
    address: `10.0.0.${n}`,
    appPort: 9090,
    meshPort: 19090,
    spiffeId: id('api'),
    protocol: 'http',
    tags,
    meta,
    weight: 1,
    datacenter: 'dc1',
    zone,
    health: 'passing',
  };
}

t.test('a subset is the instances with all its tags and all its meta values', async (t) => {
  const i = instance(1, ['v1', 'canary'], { version: 'v1', track: 'stable' });
  t.ok(inSubset(i, { tags: ['v1'], meta: {} }));
  t.ok(inSubset(i, { tags: ['v1', 'canary'], meta: { version: 'v1' } }));
  t.notOk(inSubset(i, { tags: ['v2'], meta: {} }));
  t.notOk(inSubset(i, { tags: ['v1'], meta: { version: 'v2' } }));
});

t.test('no TrafficRoute or TrafficPolicy for a service: no traffic part', async (t) => {
  t.equal(resolveTraffic(trafficDocuments(), 'other', [], 'zone-a'), undefined);
});

t.test('locality only with preferLocalZone and a known zone', async (t) => {
  const docs = trafficDocuments();
  t.equal(resolveTraffic(docs, 'api', [], 'zone-a')?.localZone, 'zone-a');
  t.equal(resolveTraffic(docs, 'api', [], '')?.localZone, undefined, 'no zone configured');
  t.equal(resolveTraffic(docs, 'api', [], undefined)?.localZone, undefined);
  t.equal(resolveTraffic(docs, 'cache', [], 'zone-a')?.localZone, undefined, 'no locality in the policy');
});

t.test('the traffic fixture: subsets, callers, mirror-only upstreams', async (t) => {
  const { model, problems } = trafficModel();
  t.strictSame(problems, []);
  t.strictSame(
    model.upstreams.map((u) => `${u.workload}->${u.service}:${u.localPort}${u.mirrorOnly === true ? ' (mirror only)' : ''}`),
    ['admin->api:9002', 'admin->shadow:0 (mirror only)', 'web->api:9001', 'web->cache:6380', 'web->shadow:0 (mirror only)'],
  );
  const api = model.upstreams.find((u) => u.workload === 'web' && u.service === 'api');
  t.strictSame(
    api?.traffic?.subsets.map((s) => `${s.name}:${s.instances.map((i) => i.address).join(',')}`),
    ['v1:10.0.3.1,10.0.3.2', 'v2:10.0.3.3'],
    'v1 by tag, v2 by meta',
  );
  t.strictSame(api?.acceptedIdentities, [id('api')]);
  t.equal(api?.traffic?.localZone, 'zone-a');
});

t.test('several local callers of one service each get their upstream; a port clash is still reported', async (t) => {
  const view = makeView(1, [{ name: 'api', source: 'consul', instances: [instance(1, [], {})] }]);
  const built = buildModel({
    nodeName: 'vm1',
    trustDomain: TD,
    workloads: [
      fixtureWorkload('web', 8080, [{ service: 'api', localPort: 9001 }]),
      fixtureWorkload('admin', 8081, [{ service: 'api', localPort: 9001 }]),
    ],
    view,
    svids: new Set([id('web'), id('admin')]),
  });
  t.strictSame(
    built.model.upstreams.map((u) => `${u.workload}->${u.service}`),
    ['admin->api'],
  );
  t.strictSame(built.problems, [
    { workload: 'web', part: 'upstream', reason: 'upstream api: local port 9001 is already used by upstream api of admin' },
  ]);
});

t.test('a mirror target not in the catalog view yet is reported', async (t) => {
  const view = makeView(1, [{ name: 'api', source: 'consul', instances: [instance(1, [], {})] }]);
  const docs = trafficDocuments([
    {
      apiVersion: 'mesh.v1',
      kind: 'TrafficRoute',
      metadata: { name: 'r' },
      spec: { service: 'api', http: [{ name: 'm', destinations: [{}], mirror: { service: 'shadow' } }] },
    },
  ]);
  const built = buildModel({
    nodeName: 'vm1',
    trustDomain: TD,
    workloads: [fixtureWorkload('web', 8080, [{ service: 'api', localPort: 9001 }])],
    view,
    svids: new Set([id('web')]),
    policies: docs,
  });
  t.strictSame(built.problems, [
    {
      workload: 'web',
      part: 'upstream',
      reason: 'mirror target shadow is not in the catalog view yet; its copies go nowhere until it is',
    },
  ]);
  t.ok(
    built.model.upstreams.some((u) => u.service === 'shadow' && u.mirrorOnly === true),
    'its (empty) cluster is still built',
  );
});
