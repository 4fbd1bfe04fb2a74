/**
 * Secure naming: who may serve an upstream comes from ServiceIdentity policy or
 * the default rule, never from the catalog (build-model.test.ts shows the
 * model leaving impostor instances out).
 */
import t from 'tap';
import { acceptedIdentities, defaultServerIdentity, identityMatches, partitionByIdentity } from '../../../agent/model/secure-naming.js';
import type { PolicyDocument } from '../../../lib/policy/schema.js';

const TD = 'example.org';
const sa = (ns: string, name: string) => `spiffe://${TD}/ns/${ns}/sa/${name}`;

function serviceIdentity(name: string, service: string, namespace: string, allowed: string[]): PolicyDocument {
  return { apiVersion: 'mesh.v1', kind: 'ServiceIdentity', name, spec: { service, namespace, allowedIdentities: allowed } };
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
  const good = { id: 'good', spiffeId: sa('default', 'api') };
  const evil = { id: 'evil', spiffeId: sa('default', 'web') };
  t.same(partitionByIdentity(accepted, [good, evil]), { kept: [good], refused: [evil] });
});
