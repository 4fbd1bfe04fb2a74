/**
 * The pure decisions of pod attestation: refusal codes from a token's
 * unverified claims, the pod identity of an accepted TokenReview, the allow
 * rules, node-record names.
 */
import t from 'tap';
import {
  identityOf,
  isAttestedNodeName,
  kubeNodeName,
  POD_NAME_KEY,
  POD_UID_KEY,
  podNodeName,
  refusalOf,
  requireAllowed,
  unverifiedClaims,
} from '../../../controlplane/kube/pod-attestation.js';

const NOW = Date.UTC(2026, 10, 30, 6, 0, 0);
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
const jwt = (payload: unknown) => `${b64({ alg: 'ES256' })}.${b64(payload)}.c2ln`;
const podClaims = { namespace: 'shop', pod: { name: 'web-0', uid: 'u-1' }, serviceaccount: { name: 'web', uid: 's-1' } };

t.test('unverified claims: audiences, expiry and the bound pod; not a JWT is undefined', async (t) => {
  t.same(unverifiedClaims(jwt({ aud: ['a', 'b'], exp: 10, 'kubernetes.io': podClaims })), {
    exp: 10,
    aud: ['a', 'b'],
    namespace: 'shop',
    pod: { name: 'web-0', uid: 'u-1' },
  });
  t.same(unverifiedClaims(jwt({ aud: 'a' })), { aud: ['a'] }, 'a single audience string');
  t.equal(unverifiedClaims('nope'), undefined);
  t.equal(unverifiedClaims('a.!!!.c'), undefined, 'a payload that is not JSON');
});

t.test('a refused token gets the code of what is wrong with it', async (t) => {
  const exp = NOW / 1000 + 600;
  const code = (claims: ReturnType<typeof unverifiedClaims>) => {
    const r = refusalOf(claims, 'example.org', NOW, 'invalid bearer token');
    return r === 'pod-check' ? r : r.code;
  };
  t.equal(code(undefined), 'MESH_E_KUBE_TOKEN_INVALID', 'not a JWT');
  t.equal(code({ aud: ['example.org'], exp: NOW / 1000 - 1 }), 'MESH_E_KUBE_TOKEN_EXPIRED', 'expired');
  t.equal(code({ aud: ['example.org'], exp: NOW / 1000 }), 'MESH_E_KUBE_TOKEN_EXPIRED', 'expiring this very second');
  t.equal(code({ aud: ['other'], exp }), 'MESH_E_KUBE_TOKEN_AUDIENCE', 'another audience');
  t.equal(code({ aud: ['example.org'], exp, namespace: 'shop', pod: { name: 'p', uid: 'u' } }), 'pod-check', 'bound to a pod: look it up');
  t.equal(code({ aud: ['example.org'], exp }), 'MESH_E_KUBE_TOKEN_INVALID', 'otherwise invalid (e.g. unknown signer)');
  const expired = refusalOf({ aud: ['other'], exp: NOW / 1000 - 60 }, 'example.org', NOW, '');
  t.equal(expired !== 'pod-check' && expired.code, 'MESH_E_KUBE_TOKEN_EXPIRED', 'expiry is named before the audience');
});

t.test('the pod identity of an accepted review', async (t) => {
  const accepted = (username: string, extra: Record<string, string[]>, audiences = ['example.org']) =>
    ({ authenticated: true, username, extra, audiences }) as const;
  const bound = { [POD_NAME_KEY]: ['web-0'], [POD_UID_KEY]: ['u-1'] };
  t.same(identityOf(accepted('system:serviceaccount:shop:web', bound), 'example.org'), {
    namespace: 'shop',
    serviceAccount: 'web',
    pod: 'web-0',
    podUid: 'u-1',
  });
  t.throws(() => identityOf(accepted('system:serviceaccount:shop:web', {}), 'example.org'), { code: 'MESH_E_KUBE_TOKEN_NOT_POD_BOUND' });
  t.throws(
    () => identityOf(accepted('alice', bound), 'example.org'),
    { code: 'MESH_E_KUBE_TOKEN_INVALID' },
    'a user, not a service account',
  );
  t.throws(() => identityOf(accepted('system:serviceaccount:shop', bound), 'example.org'), { code: 'MESH_E_KUBE_TOKEN_INVALID' });
  t.throws(() => identityOf(accepted('system:serviceaccount:shop:web', bound, ['other']), 'example.org'), {
    code: 'MESH_E_KUBE_TOKEN_AUDIENCE',
  });
});

t.test('allow rules: namespace and service-account globs', async (t) => {
  const rules = [
    { namespace: 'shop-*', serviceAccount: '*' },
    { namespace: 'payments', serviceAccount: 'api' },
  ];
  t.doesNotThrow(() => requireAllowed(rules, { namespace: 'shop-eu', serviceAccount: 'web' }));
  t.doesNotThrow(() => requireAllowed(rules, { namespace: 'payments', serviceAccount: 'api' }));
  t.throws(() => requireAllowed(rules, { namespace: 'payments', serviceAccount: 'batch' }), {
    code: 'MESH_E_KUBE_NOT_ALLOWED',
    message: /service account batch of namespace payments/,
  });
  t.throws(() => requireAllowed(rules, { namespace: 'shop', serviceAccount: 'web' }), {
    code: 'MESH_E_KUBE_NOT_ALLOWED',
    message: /namespace shop may not/,
  });
  t.throws(
    () => requireAllowed([{ namespace: 'a.b', serviceAccount: '*' }], { namespace: 'axb', serviceAccount: 'x' }),
    {
      code: 'MESH_E_KUBE_NOT_ALLOWED',
    },
    'a dot in a pattern is a dot, not any character',
  );
});

t.test('node-record names', async (t) => {
  t.equal(podNodeName('k8s', 'prod', 'shop', 'web-0.x'), 'k8s.prod.shop.web-0.x');
  t.equal(kubeNodeName('k8s', 'prod', 'node-a'), 'k8s-node.prod.node-a');
  t.ok(isAttestedNodeName('k8s', 'k8s.prod.shop.web-0'));
  t.ok(isAttestedNodeName('k8s', 'k8s-node.prod.node-a'));
  t.notOk(isAttestedNodeName('k8s', 'k8sbox'));
  t.notOk(isAttestedNodeName('k8s', 'vm-1'));
});
