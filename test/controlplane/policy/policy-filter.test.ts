/** Which resources concern a Watch subscriber: by spec.service (and a route's mirror), or by target service or SPIFFE ID. */
import t from 'tap';
import { interestKey, normalizeInterest, PolicyIndex, policySubjects, setFingerprint } from '../../../controlplane/policy/policy-filter.js';
import { MemoryPolicyStore } from '../../fakes/policy-store.js';
import { authorization, peerAuthentication, rateLimit, serviceIdentity, TD, trafficPolicy, trafficRoute } from './policy-docs.js';

const API_ID = `${TD}/ns/default/sa/api`;

function store() {
  const s = new MemoryPolicyStore(() => 1);
  s.apply(
    [
      serviceIdentity('api-id', 'api'),
      trafficRoute('api-route', 'api', 'api-shadow'),
      trafficPolicy('db-policy', 'db'),
      authorization('api-authz', { service: 'api' }),
      peerAuthentication('api-pod', { spiffeId: API_ID }),
      rateLimit('web-rl', { service: 'web' }),
    ],
    'test',
  );
  return s;
}

const names = (rs: ReadonlyArray<{ kind: string; name: string }>) => rs.map((r) => `${r.kind}/${r.name}`);

t.test('each kind concerns its service or target', async (t) => {
  const index = new PolicyIndex(store().list());
  t.same(names(index.filter({ services: ['api'], spiffeIds: [] })), [
    'AuthorizationPolicy/api-authz',
    'ServiceIdentity/api-id',
    'TrafficRoute/api-route',
  ]);
  t.same(names(index.filter({ services: [], spiffeIds: [API_ID] })), ['PeerAuthentication/api-pod']);
  t.same(names(index.filter({ services: ['db', 'web'], spiffeIds: [] })), ['RateLimit/web-rl', 'TrafficPolicy/db-policy']);
  t.same(names(index.filter({ services: ['api-shadow'], spiffeIds: [] })), ['TrafficRoute/api-route'], 'a mirror target gets the route');
  t.same(index.filter({ services: ['other'], spiffeIds: [`${TD}/ns/x/sa/y`] }), [], 'nothing for an unrelated node');
});

t.test('a resource named twice by one interest is sent once', async (t) => {
  const index = new PolicyIndex(store().list());
  t.same(names(index.filter({ services: ['api', 'api-shadow'], spiffeIds: [API_ID] })).length, 4);
});

t.test('subjects of damaged sources are empty, not a crash', async (t) => {
  t.same(policySubjects({ kind: 'TrafficRoute', source: { spec: { http: 'x' } } }), { services: [], spiffeIds: [] });
  t.same(policySubjects({ kind: 'RateLimit', source: null }), { services: [], spiffeIds: [] });
});

t.test('interest keys ignore order and duplicates', async (t) => {
  t.equal(interestKey({ services: ['b', 'a', 'a'], spiffeIds: ['x'] }), interestKey({ services: ['a', 'b'], spiffeIds: ['x', 'x'] }));
  t.not(interestKey({ services: ['a'], spiffeIds: [] }), interestKey({ services: [], spiffeIds: ['a'] }));
  t.same(normalizeInterest({ services: ['', 'b', 'a'], spiffeIds: [] }), { services: ['a', 'b'], spiffeIds: [] });
});

t.test('fingerprints change with a resource version', async (t) => {
  const s = store();
  const before = setFingerprint(new PolicyIndex(s.list()).filter({ services: ['db'], spiffeIds: [] }));
  s.apply([trafficPolicy('db-policy', 'db', '3s')], 'test');
  const after = setFingerprint(new PolicyIndex(s.list()).filter({ services: ['db'], spiffeIds: [] }));
  t.not(before, after);
});
