import { generateKeyPairSync } from 'node:crypto';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import {
  ensurePrivateDir,
  type KeyChainPem,
  keyMatchesChain,
  newKeyPair,
  readKeyAndChain,
  readPrivateKey,
  writeFileAtomic,
  writeKeyAndChain,
  writePrivateKey,
} from '../../lib/secret-files.js';
import { CRASHED, crashingIo } from '../support/crashing-io.js';
import { createTestCa } from '../support/test-ca.js';

const mode = async (file: string) => ((await stat(file)).mode & 0o777).toString(8);

t.test('writePrivateKey: 0600 in a 0700 folder, created as needed', async (t) => {
  const dir = t.testdir({});
  const file = path.join(dir, 'a', 'b', 'node.key');
  const pair = newKeyPair();
  await writePrivateKey(file, pair.privateKey);
  t.equal(await mode(file), '600');
  t.equal(await mode(path.dirname(file)), '700');
  t.match(await readFile(file, 'utf8'), /^-----BEGIN PRIVATE KEY-----\n/);
  const loaded = await readPrivateKey(file);
  t.ok(loaded.equals(pair.privateKey), 'reads back the same key');
  t.same(await readdir(path.dirname(file)), ['node.key'], 'no temp file left');
});

t.test('overwrite: false refuses an existing key; the default replaces it', async (t) => {
  const dir = t.testdir({});
  const file = path.join(dir, 'ca.key');
  const first = newKeyPair();
  await writePrivateKey(file, first.privateKey, { overwrite: false });
  const second = generateKeyPairSync('ed25519');
  await t.rejects(writePrivateKey(file, second.privateKey, { overwrite: false }), {
    code: 'MESH_E_INTERNAL',
    message: `refusing to overwrite the private key ${file}`,
    details: { file },
  });
  t.ok((await readPrivateKey(file)).equals(first.privateKey), 'unchanged');
  await writePrivateKey(file, second.privateKey);
  t.ok((await readPrivateKey(file)).equals(second.privateKey), 'replaced');
  t.equal(await mode(file), '600');
});

t.test('readPrivateKey errors name the file', async (t) => {
  const dir = t.testdir({ 'garbage.key': 'not a key\n' });
  const garbage = path.join(dir, 'garbage.key');
  await t.rejects(readPrivateKey(garbage), {
    code: 'MESH_E_KEY_UNREADABLE',
    message: new RegExp(`^cannot load the private key ${garbage.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: `),
    details: { file: garbage },
  });
  const missing = path.join(dir, 'missing.key');
  await t.rejects(readPrivateKey(missing), { code: 'MESH_E_KEY_UNREADABLE', message: /missing\.key: ENOENT/ });
});

t.test('ensurePrivateDir tightens an existing folder; writeFileAtomic modes', async (t) => {
  const dir = t.testdir({});
  const open = path.join(dir, 'open');
  await mkdir(open, { mode: 0o755 });
  await ensurePrivateDir(open);
  t.equal(await mode(open), '700');

  const file = path.join(dir, 'bundle.pem');
  await writeFileAtomic(file, 'one');
  t.equal(await mode(file), '644');
  await writeFile(path.join(dir, 'other'), 'x');
  await writeFileAtomic(file, Buffer.from('two'), 0o600);
  t.equal(await readFile(file, 'utf8'), 'two');
  t.equal(await mode(file), '600', 'the mode of the new content');
  t.same((await readdir(dir)).sort(), ['bundle.pem', 'open', 'other']);
  await t.rejects(writeFileAtomic(path.join(dir, 'nope', 'x'), 'y'), { code: 'ENOENT' });
});

t.test('newKeyPair is ECDSA P-256', async (t) => {
  const { privateKey, publicKey } = newKeyPair();
  t.equal(privateKey.asymmetricKeyType, 'ec');
  t.equal(publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
});

t.test('writeKeyAndChain: a crash at any step leaves a matching pair to read', async (t) => {
  const ca = await createTestCa('example.org');
  const issue = () => ca.issue('spiffe://example.org/x');
  const a = issue();
  const b = issue();
  const names = (dir: string) => readdir(dir).then((n) => n.sort());
  // The steps of replacing a matching pair: copy chain and key to .prev, key, chain, remove both copies.
  const STEPS = 6;
  for (let at = 0; at <= STEPS; at++) {
    const dir = t.testdir({});
    const files = { key: path.join(dir, 'svid.key'), chain: path.join(dir, 'svid.pem') };
    await writeKeyAndChain(files, a);
    t.same(await names(dir), ['svid.key', 'svid.pem'], 'a first pair: no .prev files');
    const io = crashingIo(at);
    if (at < STEPS) await t.rejects(writeKeyAndChain(files, b, io), CRASHED, `crash before step ${at}`);
    else await writeKeyAndChain(files, b, io);
    t.equal(io.done.length, at, `${at} step(s) made`);
    const read = await readKeyAndChain(files);
    t.ok(keyMatchesChain(read), `crash before step ${at}: the pair read matches`);
    const expected = at < 4 ? a : b;
    t.same(
      { keyPem: read.keyPem, chainPem: read.chainPem },
      { keyPem: expected.keyPem, chainPem: expected.chainPem },
      `the ${at < 4 ? 'old' : 'new'} pair`,
    );
    t.equal(read.previous, at === 3, at === 3 ? 'from the .prev files (new key, old chain on disk)' : 'from the current files');
    if (at === 3) t.equal(await mode(`${files.key}.prev`), '600', 'the kept key is 0600 too');
  }
});

t.test('writeKeyAndChain: a second crash before the first was repaired keeps the last good pair', async (t) => {
  const ca = await createTestCa('example.org');
  const [a, b, c] = [1, 2, 3].map(() => ca.issue('spiffe://example.org/x'));
  const dir = t.testdir({});
  const files = { key: path.join(dir, 'svid.key'), chain: path.join(dir, 'svid.pem') };
  await writeKeyAndChain(files, a as KeyChainPem);
  await t.rejects(writeKeyAndChain(files, b as KeyChainPem, crashingIo(3)), CRASHED, 'crash with the new key written, not its chain');
  // The current pair does not match: it is not copied over the good .prev pair.
  const io = crashingIo(1);
  await t.rejects(writeKeyAndChain(files, c as KeyChainPem, io), CRASHED);
  t.same(io.done, [`write ${files.key}`], 'no copy to .prev, straight to the key');
  t.same((await readKeyAndChain(files)).keyPem, a?.keyPem, 'still the first pair');
  await writeKeyAndChain(files, c as KeyChainPem);
  t.match(await readKeyAndChain(files), { keyPem: c?.keyPem, chainPem: c?.chainPem, previous: false }, 'a whole write repairs it');
  t.same((await readdir(dir)).sort(), ['svid.key', 'svid.pem'], 'and removes the .prev files');
});

t.test('readKeyAndChain: no matching pair anywhere', async (t) => {
  const ca = await createTestCa('example.org');
  const a = ca.issue('spiffe://example.org/x');
  const b = ca.issue('spiffe://example.org/x');
  const dir = t.testdir({ 'svid.key': b.keyPem, 'svid.pem': a.chainPem });
  const files = { key: path.join(dir, 'svid.key'), chain: path.join(dir, 'svid.pem') };
  t.match(
    await readKeyAndChain(files),
    { keyPem: b.keyPem, chainPem: a.chainPem, previous: false },
    'the current files, for the caller to refuse',
  );
  const first = t.testdir({ 'svid.key': a.keyPem });
  await t.rejects(
    readKeyAndChain({ key: path.join(first, 'svid.key'), chain: path.join(first, 'svid.pem') }),
    { code: 'ENOENT' },
    'a first write cut short',
  );
  t.notOk(keyMatchesChain({ keyPem: 'not a key', chainPem: a.chainPem }), 'garbage never matches');
});
