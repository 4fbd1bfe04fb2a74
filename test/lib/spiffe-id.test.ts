import t from 'tap';
import { isMeshError } from '../../lib/errors.js';
import {
  formatSpiffeId,
  isMemberOf,
  isValidSpiffeId,
  parseSpiffeId,
  trustDomainId,
  validateSegment,
  validateTrustDomain,
  workloadId,
  workloadNameOf,
} from '../../lib/spiffe-id.js';

function reasonOf(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return isMeshError(err, 'MESH_E_SPIFFE_ID_INVALID') ? err.details.reason : err;
  }
  return undefined;
}

t.test('parses valid IDs', async (t) => {
  const id = parseSpiffeId('spiffe://example.org/ns/default/sa/web');
  t.equal(id.trustDomain, 'example.org');
  t.equal(id.path, '/ns/default/sa/web');
  t.same(id.segments, ['ns', 'default', 'sa', 'web']);
  t.equal(id.toString(), 'spiffe://example.org/ns/default/sa/web');
  t.equal(`${id}`, 'spiffe://example.org/ns/default/sa/web');
  t.ok(Object.isFrozen(id));

  const td = parseSpiffeId('spiffe://my-td_1.example');
  t.equal(td.path, '');
  t.same(td.segments, []);
  t.ok(isValidSpiffeId('spiffe://td/Mixed.Case-Path_ok/x'));
});

const invalid: Array<[string, string]> = [
  ['', 'empty'],
  ['http://example.org/a', 'bad-scheme'],
  ['SPIFFE://example.org/a', 'bad-scheme'],
  ['spiffe:/example.org', 'bad-scheme'],
  ['spiffe://', 'missing-trust-domain'],
  ['spiffe:///path', 'missing-trust-domain'],
  ['spiffe://Example.org/a', 'bad-trust-domain-char'],
  ['spiffe://example.org:8443/a', 'bad-trust-domain-char'],
  ['spiffe://user@example.org/a', 'bad-trust-domain-char'],
  ['spiffe://example.org/', 'empty-segment'],
  ['spiffe://example.org//a', 'empty-segment'],
  ['spiffe://example.org/a/', 'trailing-slash'],
  ['spiffe://example.org/a/./b', 'dot-segment'],
  ['spiffe://example.org/a/..', 'dot-segment'],
  ['spiffe://example.org/a?x=1', 'bad-path-char'],
  ['spiffe://example.org/a#frag', 'bad-path-char'],
  ['spiffe://example.org/a%20b', 'bad-path-char'],
  ['spiffe://example.org/a b', 'bad-path-char'],
  [`spiffe://${'a'.repeat(256)}/x`, 'trust-domain-too-long'],
  [`spiffe://td/${'a'.repeat(2048)}`, 'too-long'],
];

for (const [input, reason] of invalid) {
  t.test(`rejects ${JSON.stringify(input.slice(0, 40))} (${reason})`, async (t) => {
    const err = t.throws(() => parseSpiffeId(input));
    t.ok(isMeshError(err, 'MESH_E_SPIFFE_ID_INVALID'));
    t.match(err, { details: { input, reason } });
    t.notOk(isValidSpiffeId(input));
  });
}

t.test('formats and validates parts', async (t) => {
  t.equal(formatSpiffeId('example.org', 'mesh', 'node', 'vm1').toString(), 'spiffe://example.org/mesh/node/vm1');
  t.equal(trustDomainId('example.org').toString(), 'spiffe://example.org');
  t.equal(validateTrustDomain('a.b'), 'a.b');
  t.equal(validateSegment('web'), 'web');
  t.throws(() => validateTrustDomain(''), { code: 'MESH_E_SPIFFE_ID_INVALID' });
  t.equal(
    reasonOf(() => validateTrustDomain('a'.repeat(256))),
    'trust-domain-too-long',
  );
  t.equal(
    reasonOf(() => validateTrustDomain('A')),
    'bad-trust-domain-char',
  );
  t.equal(
    reasonOf(() => validateSegment('')),
    'empty-segment',
  );
  t.equal(
    reasonOf(() => validateSegment('..')),
    'dot-segment',
  );
  t.equal(
    reasonOf(() => formatSpiffeId('td', 'a/b')),
    'bad-path-char',
  );
});

t.test('ns/sa helpers', async (t) => {
  const id = workloadId('example.org', 'default', 'web');
  t.equal(id.toString(), 'spiffe://example.org/ns/default/sa/web');
  t.same(workloadNameOf(id), { namespace: 'default', serviceAccount: 'web' });
  t.same(workloadNameOf(parseSpiffeId(id.toString())), { namespace: 'default', serviceAccount: 'web' });
  t.equal(workloadNameOf(parseSpiffeId('spiffe://td/mesh/node/vm1')), undefined);
  t.equal(workloadNameOf(parseSpiffeId('spiffe://td/ns/a/sa/b/extra')), undefined);
  t.equal(workloadNameOf(parseSpiffeId('spiffe://td/ns/a')), undefined);
  const err = t.throws(() => workloadId('example.org', 'bad ns', 'web'));
  t.match((err as Error).message, /namespace/);
  t.throws(() => workloadId('example.org', 'default', ''), { message: /service account/ });
  t.ok(isMemberOf(id, 'example.org'));
  t.notOk(isMemberOf(id, 'other.org'));
});
