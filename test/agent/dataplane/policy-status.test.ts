/**
 * Per-resource policy states, pure: invalid (field paths), unused (nothing on
 * this node), unresolved (no instance, a subset that selects none, a mirror
 * service not in the catalog), applied.
 */
import t from 'tap';
import { policyKey } from '../../../agent/dataplane/policy-rollback.js';
import { policyResourceStatuses } from '../../../agent/dataplane/policy-status.js';
import { makeView } from '../../../agent/discovery/catalog-view.js';
import { parsePolicyDocument } from '../../../lib/policy/parse.js';
import type { StoredPolicy } from '../../../lib/policy/schema.js';
import { apiInstance, policyDoc, web } from './policy-fixtures.js';

const instance = apiInstance;

const doc = policyDoc;
const stored = (source: ReturnType<typeof doc>, version = 1): StoredPolicy =>
  ({ kind: source.kind, name: source.metadata.name, version, revision: 4, source }) as StoredPolicy;

const route = (name: string, service: string, extra: Record<string, unknown> = {}) =>
  doc('TrafficRoute', name, {
    service,
    subsets: [{ name: 'v2', meta: { version: 'v2' } }],
    http: [{ name: 'all', destinations: [{ subset: 'v2' }], ...extra }],
  });

t.test('each state with its reason', async (t) => {
  const received = [
    stored(doc('TrafficPolicy', 'api-tp', { service: 'api', connectTimeout: '2s' })),
    stored(doc('TrafficPolicy', 'bad', { service: 'api', connectTimeout: 'soon' })),
    stored(doc('TrafficPolicy', 'db-tp', { service: 'db' })),
    stored(doc('AuthorizationPolicy', 'web-authz', { target: { service: 'web' }, defaultAction: 'deny' })),
    stored(doc('AuthorizationPolicy', 'id-authz', { target: { spiffeId: 'spiffe://example.org/ns/x/sa/y' }, defaultAction: 'deny' })),
    stored(route('api-route', 'api')),
    stored(doc('ServiceIdentity', 'pay-id', { service: 'pay', allowedIdentities: ['spiffe://example.org/ns/default/sa/pay'] })),
  ];
  const parsed = new Map(received.map((r) => [policyKey(r), parsePolicyDocument(r.source)]));
  const served = new Map(received.map((r) => [policyKey(r), r]));
  const v1Only = makeView(3, [{ name: 'api', source: 'consul', instances: [instance('api-1', [], { version: 'v1' })] }]);
  const input = { received, parsed, rolledBack: new Map(), lastAccepted: served, workloads: [web], view: v1Only, served };
  const byName = () => new Map(policyResourceStatuses(input).map((s) => [s.name, s]));

  let s = byName();
  t.same(
    policyResourceStatuses(input).map((r) => `${r.kind}/${r.name}`),
    [
      'AuthorizationPolicy/id-authz',
      'AuthorizationPolicy/web-authz',
      'ServiceIdentity/pay-id',
      'TrafficPolicy/api-tp',
      'TrafficPolicy/bad',
      'TrafficPolicy/db-tp',
      'TrafficRoute/api-route',
    ],
    'sorted by kind and name',
  );
  t.same(s.get('api-tp'), { kind: 'TrafficPolicy', name: 'api-tp', version: 1, revision: 4, state: 'applied' });
  t.equal(s.get('bad')?.state, 'invalid');
  t.match(s.get('bad')?.reason, /does not parse: spec\.connectTimeout: /);
  t.same([s.get('db-tp')?.state, s.get('db-tp')?.reason], ['unused', 'no workload on this node calls service db']);
  t.equal(s.get('web-authz')?.state, 'applied', 'a server-side policy of a local workload');
  t.same(
    [s.get('id-authz')?.state, s.get('id-authz')?.reason],
    ['unused', 'no workload on this node has identity spiffe://example.org/ns/x/sa/y'],
  );
  t.same([s.get('pay-id')?.state, s.get('pay-id')?.reason], ['unused', 'no workload on this node calls service pay']);
  t.same([s.get('api-route')?.state, s.get('api-route')?.reason], ['unresolved', 'subset v2 (version=v2) selects no instance of api']);

  input.view = makeView(4, [{ name: 'api', source: 'consul', instances: [instance('api-2', ['canary'], { version: 'v2' })] }]);
  s = byName();
  t.equal(s.get('api-route')?.state, 'applied', 'once an instance of the subset is in the catalog');

  input.view = makeView(5, []);
  s = byName();
  t.same([s.get('api-tp')?.state, s.get('api-tp')?.reason], ['unresolved', 'service api has no instance in the catalog yet']);
});

t.test('a mirror service not in the catalog is unresolved', async (t) => {
  const r = stored(route('mirrored', 'api', { mirror: { service: 'shadow', percent: 10 } }));
  const view = makeView(1, [{ name: 'api', source: 'consul', instances: [instance('a', [], { version: 'v2' })] }]);
  const [s] = policyResourceStatuses({
    received: [r],
    parsed: new Map([[policyKey(r), parsePolicyDocument(r.source)]]),
    rolledBack: new Map(),
    lastAccepted: new Map(),
    workloads: [web],
    view,
    served: new Map([[policyKey(r), r]]),
  });
  t.same([s?.state, s?.reason], ['unresolved', 'mirror service shadow of rule all has no instance in the catalog yet']);
});
