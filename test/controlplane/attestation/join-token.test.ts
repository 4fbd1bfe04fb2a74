import { createHash } from 'node:crypto';
import t from 'tap';
import { hashToken, looksLikeToken, newJoinToken } from '../../../controlplane/attestation/join-token.js';

t.test('format: mjt1_ and 32 random bytes in base64url', async (t) => {
  const token = newJoinToken((n) => Buffer.alloc(n, 0xff));
  t.equal(token, `mjt1_${'_'.repeat(42)}8`);
  t.equal(token.length, 5 + 43);
  const random = newJoinToken();
  t.match(random, /^mjt1_[A-Za-z0-9_-]{43}$/);
  t.not(random, newJoinToken(), 'random');
  let asked = 0;
  newJoinToken((n) => {
    asked = n;
    return Buffer.alloc(n);
  });
  t.equal(asked, 32);
});

t.test('hash: SHA-256 hex of the UTF-8 token', async (t) => {
  t.equal(hashToken('abc'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  const token = newJoinToken();
  t.equal(hashToken(token), createHash('sha256').update(token).digest('hex'));
  t.match(hashToken(token), /^[0-9a-f]{64}$/);
  t.not(hashToken(token), hashToken(`${token}x`));
});

t.test('looksLikeToken', async (t) => {
  t.ok(looksLikeToken(newJoinToken()));
  t.notOk(looksLikeToken(''));
  t.notOk(looksLikeToken('mjt1_'));
  t.notOk(looksLikeToken(`mjt2_${'a'.repeat(43)}`));
  t.notOk(looksLikeToken(`mjt1_${'a'.repeat(42)}`));
  t.notOk(looksLikeToken(`mjt1_${'a'.repeat(44)}`));
  t.ok(looksLikeToken(`mjt1_${'a'.repeat(43)}`));
});
