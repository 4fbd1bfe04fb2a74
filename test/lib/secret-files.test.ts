import { generateKeyPairSync } from 'node:crypto';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { ensurePrivateDir, newKeyPair, readPrivateKey, writeFileAtomic, writePrivateKey } from '../../lib/secret-files.js';

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
