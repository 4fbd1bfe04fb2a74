/**
 * Secure naming: who may serve an upstream comes from ServiceIdentity policy or
 * the default rule, never from the catalog; instances claiming anything else
 * are left out of the model with a problem naming them.
 */
import t from 'tap';
import { type CatalogInstance, makeView } from '../../../agent/discovery/catalog-view.js';
import { buildModel } from '../../../agent/model/build-model.js';
import { acceptedIdentities, defaultServerIdentity, identityMatches, partitionByIdentity } from '../../../agent/model/secure-naming.js';
import type { Workload } from '../../../agent/workloads/workload.js';
import type { PolicyDocument } from '../../../lib/policy/schema.js';

const TD = 'example.org';
const sa = (ns: string, name: string) => `spiffe://${TD}/ns/${ns}/sa/${name}`;

function serviceIdentity(name: string, service: string, namespace: string, allowed: string[]): PolicyDocument {
  return { apiVersion: 'mesh.v1', kind: 'ServiceIdentity', name, spec: { service, namespace, allowedIdentities: allowed } };
}

function instance(id: string, spiffeId: string, protocol = 'http'): CatalogInstance {
  return {
    id,
    node: id,
    address: `10.0.0.${id.length}`,
    appPort: 9090,
    meshPort: 19090,
    spiffeId,
    protocol,
    tags: [],
    meta: {},
    weight: 1,
    datacenter: 'dc1',
    zone: '',
    health: 'passing',
  };
}

function web(upstreamNamespace?: string): Workload {
  return {
    file: '/w/web.yaml',
    name: 'web',
    port: 8080,
    meshPort: 18080,
    protocol: 'http',
    namespace: 'default',
    serviceAccount: 'web',
    spiffeId: sa('default', 'web'),
    tags: [],
    meta: {},
    weight: 1,
    check: undefined,
    upstreams: [{ service: 'api', localPort: 9001, namespace: upstreamNamespace ?? 'default' }],
  };
}

t.test('default rule: exactly spiffe://<td>/ns/<N>/sa/<S>', async (t) => {
  t.equal(defaultServerIdentity(TD, 'prod', 'api'), sa('prod', 'api'));
  t.same(acceptedIdentities([], TD, 'api', 'prod'), { patterns: [sa('prod', 'api')], source: { kind: 'default' } });
  const other = serviceIdentity('api-other-ns', 'api', 'staging', [sa('staging', 'x')]);
  t.same(acceptedIdentities([other], TD, 'api', 'prod').source, { kind: 'default' }, 'a resource for another namespace does not apply');
});

t.test('ServiceIdentity resources for (N, S) replace the default, together, sorted and unique', async (t) => {
  const a = serviceIdentity('api-a', 'api', 'default', [sa('default', 'api-v2'), sa('default', 'api')]);
  const b = serviceIdentity('api-b', 'api', 'default', [sa('default', 'api'), `spiffe://${TD}/ns/*/sa/api-canary`]);
  t.same(acceptedIdentities([b, a], TD, 'api', 'default'), {
    patterns: [`spiffe://${TD}/ns/*/sa/api-canary`, sa('default', 'api'), sa('default', 'api-v2')],
    source: { kind: 'policy', names: ['api-a', 'api-b'] },
  });
});

t.test('a * segment matches exactly one non-empty segment', async (t) => {
  const p = `spiffe://${TD}/ns/*/sa/api`;
  t.ok(identityMatches(p, sa('prod', 'api')));
  t.notOk(identityMatches(p, `spiffe://${TD}/ns/a/b/sa/api`), 'two segments');
  t.notOk(identityMatches(p, `spiffe://${TD}/ns//sa/api`), 'an empty segment');
  t.notOk(identityMatches(p, sa('prod', 'api2')));
  t.notOk(identityMatches(p, `spiffe://other.org/ns/prod/sa/api`), 'another trust domain');
  t.ok(identityMatches(sa('prod', 'api'), sa('prod', 'api')));
  t.notOk(identityMatches(sa('prod', 'api'), `${sa('prod', 'api')}/x`));
});

t.test('partition keeps only instances claiming an accepted identity', async (t) => {
  const accepted = acceptedIdentities([], TD, 'api', 'default');
  const good = instance('good', sa('default', 'api'));
  const evil = instance('evil', sa('default', 'web'));
  t.same(partitionByIdentity(accepted, [good, evil]), { kept: [good], refused: [evil] });
});

t.test('buildModel: the impostor instance is left out and reported; the cluster accepts the policy set', async (t) => {
  const view = makeView(1, [
    {
      name: 'api',
      source: 'consul',
      instances: [instance('evil', sa('default', 'web'), 'tcp'), instance('good', sa('default', 'api'))],
    },
  ]);
  const none = buildModel({ nodeName: 'n', trustDomain: TD, workloads: [web()], view, svids: new Set([sa('default', 'web')]) });
  const [u] = none.model.upstreams;
  t.same(
    u?.instances.map((i) => i.spiffeId),
    [sa('default', 'api')],
    'only the legitimate instance is an endpoint',
  );
  t.same(u?.acceptedIdentities, [sa('default', 'api')]);
  t.equal(u?.protocol, 'http', 'the protocol comes from an accepted instance, not the impostor');
  t.same(none.skippedInstances, { api: 1 });
  t.match(none.problems, [
    {
      workload: 'web',
      part: 'upstream',
      reason: /upstream api: 1 catalog instance\(s\) left out.*evil \(spiffe:\/\/example.org\/ns\/default\/sa\/web\).*default rule/,
    },
  ]);

  const policy = [serviceIdentity('api-ids', 'api', 'default', [sa('default', 'api'), sa('default', 'web')])];
  const both = buildModel({
    nodeName: 'n',
    trustDomain: TD,
    workloads: [web()],
    view,
    svids: new Set([sa('default', 'web')]),
    policies: policy,
  });
  t.same(both.model.upstreams[0]?.instances.length, 2, 'with a ServiceIdentity allowing both, both serve');
  t.same(both.problems, []);

  const otherNs = buildModel({
    nodeName: 'n',
    trustDomain: TD,
    workloads: [web('prod')],
    view,
    svids: new Set([sa('default', 'web')]),
  });
  t.same(otherNs.model.upstreams[0]?.acceptedIdentities, [sa('prod', 'api')], 'the upstream namespace decides the default');
  t.same(otherNs.model.upstreams[0]?.instances, [], 'no instance claims it: no endpoint (fails closed)');
  t.same(otherNs.skippedInstances, { api: 2 });
});
