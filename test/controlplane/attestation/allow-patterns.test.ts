import t from 'tap';
import { isAllowed, matchesPattern, validatePattern } from '../../../controlplane/attestation/allow-patterns.js';
import { parseSpiffeId } from '../../../lib/spiffe-id.js';

const id = (s: string) => parseSpiffeId(s);

t.test('exact patterns and "*" per segment', async (t) => {
  const exact = 'spiffe://example.org/ns/default/sa/web';
  t.ok(matchesPattern(id(exact), exact));
  t.notOk(matchesPattern(id('spiffe://example.org/ns/default/sa/db'), exact));

  const sa = 'spiffe://example.org/ns/default/sa/*';
  t.ok(matchesPattern(id('spiffe://example.org/ns/default/sa/web'), sa));
  t.ok(matchesPattern(id('spiffe://example.org/ns/default/sa/db-1'), sa));
  t.notOk(matchesPattern(id('spiffe://example.org/ns/other/sa/web'), sa));

  const ns = 'spiffe://example.org/ns/*/sa/web';
  t.ok(matchesPattern(id('spiffe://example.org/ns/prod/sa/web'), ns));
  t.notOk(matchesPattern(id('spiffe://example.org/ns/prod/sa/api'), ns));
  t.ok(matchesPattern(id('spiffe://example.org/ns/a/sa/b'), 'spiffe://example.org/*/*/*/*'));
});

t.test('a "*" matches exactly one segment: wrong segment counts do not match', async (t) => {
  const sa = 'spiffe://example.org/ns/default/sa/*';
  t.notOk(matchesPattern(id('spiffe://example.org/ns/default/sa'), sa), 'one fewer');
  t.notOk(matchesPattern(id('spiffe://example.org/ns/default/sa/web/extra'), sa), 'one more');
  t.notOk(matchesPattern(id('spiffe://example.org/ns/default/sa/web'), 'spiffe://example.org/ns/*'));
});

t.test('other trust domains never match', async (t) => {
  t.notOk(matchesPattern(id('spiffe://other.org/ns/default/sa/web'), 'spiffe://example.org/ns/default/sa/*'));
  t.notOk(matchesPattern(id('spiffe://example.org/ns/default/sa/web'), 'spiffe://other.org/ns/default/sa/web'));
});

t.test('isAllowed: any pattern', async (t) => {
  const patterns = ['spiffe://example.org/ns/a/sa/x', 'spiffe://example.org/ns/b/sa/*'];
  t.ok(isAllowed(id('spiffe://example.org/ns/a/sa/x'), patterns));
  t.ok(isAllowed(id('spiffe://example.org/ns/b/sa/y'), patterns));
  t.notOk(isAllowed(id('spiffe://example.org/ns/a/sa/y'), patterns));
  t.notOk(isAllowed(id('spiffe://example.org/ns/a/sa/x'), []));
});

t.test('validatePattern', async (t) => {
  for (const ok of ['spiffe://example.org/ns/default/sa/*', 'spiffe://example.org/ns/*/sa/*', 'spiffe://example.org/web']) {
    t.equal(validatePattern(ok, 'example.org'), ok);
  }
  t.throws(() => validatePattern('spiffe://other.org/ns/a/sa/*', 'example.org'), {
    code: 'MESH_E_NOT_AUTHORIZED',
    message: /outside the trust domain example\.org/,
  });
  t.throws(() => validatePattern('spiffe://example.org/mesh/node/*', 'example.org'), {
    code: 'MESH_E_NOT_AUTHORIZED',
    message: /reserved \/mesh\/ namespace/,
  });
  t.throws(() => validatePattern('spiffe://example.org', 'example.org'), {
    code: 'MESH_E_SPIFFE_ID_INVALID',
    message: /has no path/,
    details: { reason: 'empty' },
  });
  t.throws(
    () => validatePattern('spiffe://example.org/ns/we*b', 'example.org'),
    { code: 'MESH_E_SPIFFE_ID_INVALID' },
    'no partial wildcards',
  );
  t.throws(() => validatePattern('spiffe://example.org/ns//sa', 'example.org'), { code: 'MESH_E_SPIFFE_ID_INVALID' });
  t.throws(() => validatePattern('https://example.org/ns/a', 'example.org'), { code: 'MESH_E_SPIFFE_ID_INVALID' });
  t.throws(() => validatePattern('spiffe://*/ns/a', 'example.org'), { code: 'MESH_E_SPIFFE_ID_INVALID' }, 'no wildcard trust domain');
});
