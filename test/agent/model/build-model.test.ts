import t from 'tap';
import { type CatalogInstance, makeView } from '../../../agent/discovery/catalog-view.js';
import { buildModel } from '../../../agent/model/build-model.js';
import type { PolicyDocument } from '../../../lib/policy/schema.js';
import { fixtureWorkload } from '../xds/fixtures/traffic-model.js';

const TD = 'example.org';
const id = (sa: string) => `spiffe://${TD}/ns/default/sa/${sa}`;

const workload = fixtureWorkload;

function instance(node: string, spiffeId: string, protocol = 'http2'): CatalogInstance {
  return {
    id: `api-${node}`,
    node,
    address: `10.0.0.${node.length}`,
    appPort: 9090,
    meshPort: 19090,
    spiffeId,
    protocol,
    tags: [],
    meta: {},
    weight: 3,
    datacenter: 'dc1',
    zone: '',
    health: 'passing',
  };
}

t.test('workloads with SVIDs, upstreams with mesh instances; outside-mesh instances skipped', async (t) => {
  const view = makeView(3, [{ name: 'api', source: 'consul', instances: [instance('a', id('api')), instance('bb', '')] }]);
  const built = buildModel({
    nodeName: 'vm1',
    trustDomain: TD,
    workloads: [workload('web', 8080, [{ service: 'api', localPort: 9001 }])],
    view,
    svids: new Set([id('web')]),
  });
  t.same(built.problems, []);
  t.same(built.model.workloads, [{ name: 'web', protocol: 'http', appPort: 8080, meshPort: 18080, spiffeId: id('web') }]);
  t.same(built.model.upstreams, [
    {
      service: 'api',
      localPort: 9001,
      protocol: 'http2',
      workload: 'web',
      instances: [{ address: '10.0.0.1', meshPort: 19090, spiffeId: id('api'), weight: 3, healthy: true, zone: '' }],
      acceptedIdentities: [id('api')],
    },
  ]);
  t.same(built.skippedInstances, { api: 1 });
});

t.test('left out and reported: no SVID yet, port clashes; a second caller of one service is kept', async (t) => {
  const built = buildModel({
    nodeName: 'vm1',
    trustDomain: TD,
    workloads: [
      workload('a', 8080, [{ service: 'api', localPort: 9001 }]),
      workload('b', 8080, []),
      workload('c', 8081, [
        { service: 'api', localPort: 9002 },
        { service: 'db', localPort: 9001 },
      ]),
      workload('d', 8082, [{ service: 'cache', localPort: 18081 }]),
      workload('e', 8083),
    ],
    view: makeView(1, []),
    svids: new Set([id('a'), id('b'), id('c'), id('d')]),
  });
  t.same(
    built.model.workloads.map((w) => w.name),
    ['a', 'c', 'd'],
  );
  t.same(
    built.model.upstreams.map((u) => `${u.workload}->${u.service}:${u.localPort}:${u.protocol}:${u.instances.length}`),
    ['a->api:9001:tcp:0', 'c->api:9002:tcp:0'],
  );
  t.same(built.problems, [
    { workload: 'b', part: 'inbound', reason: 'mesh port 18080 is already used by workload a' },
    { workload: 'e', part: 'inbound', reason: `waiting for its SVID (${id('e')})` },
    { workload: 'c', part: 'upstream', reason: 'upstream db: local port 9001 is already used by upstream api of a' },
    { workload: 'd', part: 'upstream', reason: 'upstream cache: local port 18081 is already used by workload c' },
  ]);
});

t.test('secure naming: the impostor instance is left out and reported; the cluster accepts the policy set', async (t) => {
  const view = makeView(1, [
    {
      name: 'api',
      source: 'consul',
      instances: [instance('evil', id('web'), 'tcp'), instance('good', id('api'), 'http')],
    },
  ]);
  const none = buildModel({
    nodeName: 'n',
    trustDomain: TD,
    workloads: [workload('web', 8080, [{ service: 'api', localPort: 9001 }])],
    view,
    svids: new Set([id('web')]),
  });
  const [u] = none.model.upstreams;
  t.same(
    u?.instances.map((i) => i.spiffeId),
    [id('api')],
    'only the legitimate instance is an endpoint',
  );
  t.same(u?.acceptedIdentities, [id('api')]);
  t.equal(u?.protocol, 'http', 'the protocol comes from an accepted instance, not the impostor');
  t.same(none.skippedInstances, { api: 1 });
  t.match(none.problems, [
    {
      workload: 'web',
      part: 'upstream',
      reason: /upstream api: 1 catalog instance\(s\) left out.*api-evil \(spiffe:\/\/example.org\/ns\/default\/sa\/web\).*default rule/,
    },
  ]);

  const policy = [serviceIdentity('api-ids', 'api', 'default', [id('api'), id('web')])];
  const both = buildModel({
    nodeName: 'n',
    trustDomain: TD,
    workloads: [workload('web', 8080, [{ service: 'api', localPort: 9001 }])],
    view,
    svids: new Set([id('web')]),
    policies: policy,
  });
  t.same(both.model.upstreams[0]?.instances.length, 2, 'with a ServiceIdentity allowing both, both serve');
  t.same(both.problems, []);

  const otherNs = buildModel({
    nodeName: 'n',
    trustDomain: TD,
    workloads: [workload('web', 8080, [{ service: 'api', localPort: 9001, namespace: 'prod' }])],
    view,
    svids: new Set([id('web')]),
  });
  t.same(otherNs.model.upstreams[0]?.acceptedIdentities, [`spiffe://${TD}/ns/prod/sa/api`], 'the upstream namespace decides the default');
  t.same(otherNs.model.upstreams[0]?.instances, [], 'no instance claims it: no endpoint (fails closed)');
  t.same(otherNs.skippedInstances, { api: 2 });
});

function serviceIdentity(name: string, service: string, namespace: string, allowed: string[]): PolicyDocument {
  return { apiVersion: 'mesh.v1', kind: 'ServiceIdentity', name, spec: { service, namespace, allowedIdentities: allowed } };
}
