/**
 * Server-side policy in the inbound listener (authorization as RBAC, local
 * rate limit, permissive mTLS, access log): golden files under
 * test/golden/xds/inbound-policy/ are the spec, and every listener must be a
 * valid Envoy v3 message (the rbac and local_ratelimit protos are loaded).
 */
import t from 'tap';
import { inboundPolicy, isEmptyInboundPolicy } from '../../../agent/model/inbound-policy.js';
import type { ModelWorkload } from '../../../agent/model/proxy-model.js';
import { buildInboundListener } from '../../../agent/xds/resources/inbound-listener.js';
import { bucketSize } from '../../../agent/xds/resources/rate-limit.js';
import { checkMessage, fromAny, toAny } from '../../../lib/envoy/protos.js';
import { TypeUrl } from '../../../lib/envoy/type-urls.js';
import { parsePolicyDocument } from '../../../lib/policy/parse.js';
import type { PolicyDocument } from '../../../lib/policy/schema.js';
import { matchGolden } from '../../support/golden.js';
import { API_ID, CACHE_ID, TD, WEB_ID } from './fixtures/model.js';

function doc(source: unknown): PolicyDocument {
  const parsed = parsePolicyDocument(source);
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.issues));
  return parsed.document;
}

const apiAuthz = doc({
  apiVersion: 'mesh.v1',
  kind: 'AuthorizationPolicy',
  metadata: { name: 'api-authz' },
  spec: {
    target: { service: 'api' },
    defaultAction: 'deny',
    rules: [
      { name: 'only-web', action: 'allow', from: { ids: [WEB_ID] } },
      { name: 'ops-ns', action: 'allow', from: { namespaces: ['ops'] }, http: { methods: ['GET'], paths: [{ prefix: '/status' }] } },
      {
        name: 'no-admin',
        action: 'deny',
        from: { idPrefixes: [`spiffe://${TD}/ns/default/`] },
        http: { paths: [{ prefix: '/admin' }, { regex: '/internal/.*' }], headers: [{ name: 'x-debug', present: true }] },
      },
    ],
  },
});
const apiLimit = doc({
  apiVersion: 'mesh.v1',
  kind: 'RateLimit',
  metadata: { name: 'api-limit' },
  spec: {
    target: { spiffeId: API_ID },
    requestsPerSecond: 50,
    burst: 0,
    routes: [{ name: 'slow', path: { prefix: '/slow' }, requestsPerSecond: 2, burst: 4 }],
  },
});
const apiPermissive = doc({
  apiVersion: 'mesh.v1',
  kind: 'PeerAuthentication',
  metadata: { name: 'api-migrating' },
  spec: { target: { service: 'api' }, mode: 'permissive' },
});
const cacheAuthz = doc({
  apiVersion: 'mesh.v1',
  kind: 'AuthorizationPolicy',
  metadata: { name: 'cache-authz' },
  spec: {
    target: { spiffeId: CACHE_ID },
    defaultAction: 'deny',
    rules: [
      { name: 'from-default', action: 'allow', from: { namespaces: ['default'] } },
      { name: 'http-only', action: 'allow', from: { ids: [WEB_ID] }, http: { methods: ['GET'] } },
      { name: 'block-web', action: 'deny', from: { ids: [WEB_ID] } },
    ],
  },
});
const policies = [apiAuthz, apiLimit, apiPermissive, cacheAuthz];

function workload(name: string, protocol: ModelWorkload['protocol'], spiffeId: string, port: number): ModelWorkload {
  const { policy } = inboundPolicy(policies, { name, spiffeId });
  return { name, protocol, appPort: port, meshPort: port + 10000, spiffeId, ...(isEmptyInboundPolicy(policy) ? {} : { inbound: policy }) };
}

const ACCESS_LOG = '/var/lib/mesh-agent/envoy/access-inbound.log';
const listeners = {
  'inbound:api': buildInboundListener(workload('api', 'http', API_ID, 9090), TD, { accessLogPath: ACCESS_LOG }),
  'inbound:cache': buildInboundListener(workload('cache', 'tcp', CACHE_ID, 6379), TD, { accessLogPath: ACCESS_LOG }),
  'inbound:web': buildInboundListener(workload('web', 'http', WEB_ID, 8080), TD),
};

t.test('listeners with policy match test/golden/xds/inbound-policy/listeners.json', async (t) => {
  matchGolden(t, 'xds/inbound-policy/listeners.json', listeners);
});

t.test('they are valid Envoy v3 messages', async (t) => {
  for (const [name, listener] of Object.entries(listeners)) {
    t.doesNotThrow(() => checkMessage(TypeUrl.Listener, listener), `${name} passes checkMessage`);
    t.equal(fromAny(toAny(TypeUrl.Listener, listener)).typeUrl, TypeUrl.Listener, `${name} encodes`);
  }
});

t.test('resolution: a spiffeId target wins over a service target; shadowed resources reported', async (t) => {
  const byService = doc({
    apiVersion: 'mesh.v1',
    kind: 'RateLimit',
    metadata: { name: 'a-api-by-service' },
    spec: { target: { service: 'api' }, requestsPerSecond: 1 },
  });
  const second = doc({
    apiVersion: 'mesh.v1',
    kind: 'RateLimit',
    metadata: { name: 'z-api-limit' },
    spec: { target: { spiffeId: API_ID }, requestsPerSecond: 3 },
  });
  const r = inboundPolicy([byService, second, apiLimit], { name: 'api', spiffeId: API_ID });
  t.equal(r.policy.rateLimit?.name, 'api-limit', 'the spiffeId target wins; the first by name among them');
  t.same(r.shadowed, ['RateLimit z-api-limit (api-limit is in force)']);
  t.equal(inboundPolicy([byService], { name: 'api', spiffeId: API_ID }).policy.rateLimit?.name, 'a-api-by-service');
  t.same(inboundPolicy(policies, { name: 'web', spiffeId: WEB_ID }), { policy: {}, shadowed: [] }, 'no policy for web');
  const strict = doc({
    apiVersion: 'mesh.v1',
    kind: 'PeerAuthentication',
    metadata: { name: 'api-strict' },
    spec: { target: { spiffeId: API_ID }, mode: 'strict' },
  });
  t.equal(inboundPolicy([apiPermissive, strict], { name: 'api', spiffeId: API_ID }).policy.mtls, undefined, 'strict by spiffeId wins');
});

t.test('a workload with no policy keeps the strict listener unchanged', async (t) => {
  const plain = buildInboundListener({ name: 'web', protocol: 'http', appPort: 8080, meshPort: 18080, spiffeId: WEB_ID }, TD);
  t.same(listeners['inbound:web'], plain);
  t.notOk(JSON.stringify(plain).includes('access_log'));
});

t.test('bucket size: the burst, or one second of tokens when burst is 0', async (t) => {
  t.equal(bucketSize({ requestsPerSecond: 50, burst: 0 }), 50);
  t.equal(bucketSize({ requestsPerSecond: 2, burst: 4 }), 4);
  t.equal(bucketSize({ requestsPerSecond: 10, burst: 1 }), 1);
});
