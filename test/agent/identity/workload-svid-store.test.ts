/**
 * Workload SVIDs on disk: folder names, modes (0700 folders, 0600 key),
 * load() accepting only SVIDs that are valid now for their folder's SPIFFE ID,
 * chain to the stored bundle and go with their key, and remove/prune.
 */
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { checkStoredSvid, workloadDirName } from '../../../agent/identity/svid-check.js';
import { CHAIN_FILE, createWorkloadSvidStore, KEY_FILE, workloadsDir } from '../../../agent/identity/workload-svid-store.js';
import { writeKeyAndChain } from '../../../lib/secret-files.js';
import { fromPemAll, toPem } from '../../../lib/x509/pem.js';
import { CRASHED, crashingIo } from '../../support/crashing-io.js';
import { createTestCa } from '../../support/test-ca.js';

const WEB = 'spiffe://example.org/ns/default/sa/web';
const API = 'spiffe://example.org/ns/default/sa/api';
const ca = await createTestCa('example.org');
const HOUR = 3_600_000;

const mode = async (file: string) => (await stat(file)).mode & 0o777;

t.test('folder names: readable, distinct, and safe for long or odd IDs', async (t) => {
  t.equal(workloadDirName(WEB), 'example.org+ns+default+sa+web');
  t.not(workloadDirName('spiffe://example.org/ns/a/sa/b'), workloadDirName('spiffe://example.org/ns/a.sa/b'));
  const long = `spiffe://example.org/${'x'.repeat(300)}`;
  const name = workloadDirName(long);
  t.ok(name.length <= 200, 'a long ID gets a short name');
  t.match(name, /^example\.org\+x+\+[0-9a-f]{32}$/);
  t.not(name, workloadDirName(`${long}y`), 'with its hash');
  t.match(workloadDirName('spiffe://.hidden/ns/a'), /^hidden\+ns\+a\+[0-9a-f]{32}$/, 'never a hidden folder');
});

t.test('save writes the key 0600 and the chain into 0700 folders; load gives them back', async (t) => {
  const dataDir = t.testdir({ identity: {} });
  const store = createWorkloadSvidStore(dataDir);
  const web = ca.issue(WEB, HOUR);
  await store.save(WEB, web);
  const dir = path.join(workloadsDir(dataDir), workloadDirName(WEB));
  t.equal(await mode(workloadsDir(dataDir)), 0o700);
  t.equal(await mode(dir), 0o700);
  t.equal(await mode(path.join(dir, KEY_FILE)), 0o600, 'the key is 0600');
  t.equal(await mode(path.join(dir, CHAIN_FILE)), 0o644);
  t.same((await readdir(dir)).sort(), [KEY_FILE, CHAIN_FILE], 'no temp file left');
  t.equal(await readFile(path.join(dir, KEY_FILE), 'utf8'), web.keyPem);

  const loaded = await store.load(ca.bundlePem, Date.now());
  t.same(loaded.rejected, []);
  t.match(loaded.svids, [{ spiffeId: WEB, chainPem: web.chainPem, keyPem: web.keyPem, serial: web.serial }]);

  // Replaced on renewal.
  const renewed = ca.issue(WEB, HOUR);
  await store.save(WEB, renewed);
  t.match((await store.load(ca.bundlePem, Date.now())).svids, [{ serial: renewed.serial }]);
});

t.test('load rejects what may not be served, saying why and quoting nothing', async (t) => {
  const dataDir = t.testdir({ identity: {} });
  const store = createWorkloadSvidStore(dataDir);
  const root = workloadsDir(dataDir);
  const web = ca.issue(WEB, HOUR);
  const api = ca.issue(API, HOUR);
  await store.save(WEB, web);
  await store.save(API, api);
  const now = Date.now();

  t.match(await store.load(ca.bundlePem, now + 2 * HOUR), { svids: [], rejected: [{ reason: /the leaf expired at/ }, {}] }, 'expired');
  t.match(await store.load(ca.bundlePem, now - HOUR), { svids: [], rejected: [{ reason: /not valid before/ }, {}] }, 'not yet valid');
  t.match(
    await store.load((await createTestCa('example.org')).bundlePem, now),
    { svids: [], rejected: [{ reason: /does not lead to a root of the stored trust bundle/ }, {}] },
    'another CA',
  );

  // A crash between the key and the chain: a new key next to the old chain.
  await writeFile(path.join(root, workloadDirName(API), KEY_FILE), ca.issue(API, HOUR).keyPem);
  // A folder whose certificate is for another ID.
  await mkdir(path.join(root, 'example.org+ns+default+sa+db'), { mode: 0o700 });
  await writeFile(path.join(root, 'example.org+ns+default+sa+db', KEY_FILE), web.keyPem);
  await writeFile(path.join(root, 'example.org+ns+default+sa+db', CHAIN_FILE), web.chainPem);
  // Garbage, and a folder without files.
  await mkdir(path.join(root, 'example.org+ns+default+sa+junk'));
  await writeFile(path.join(root, 'example.org+ns+default+sa+junk', KEY_FILE), 'not a key');
  await writeFile(path.join(root, 'example.org+ns+default+sa+junk', CHAIN_FILE), 'not a certificate');
  await mkdir(path.join(root, 'example.org+ns+default+sa+empty'));

  const { svids, rejected } = await store.load(ca.bundlePem, now);
  t.same(
    svids.map((s) => s.spiffeId),
    [WEB],
    'only the good one',
  );
  t.same(Object.fromEntries(rejected.map((r) => [r.dir, r.reason])), {
    'example.org+ns+default+sa+api': 'the key does not go with the certificate',
    'example.org+ns+default+sa+db': 'the leaf is for spiffe://example.org/ns/default/sa/web, which is not stored under this folder name',
    'example.org+ns+default+sa+empty': 'svid.key or svid.pem cannot be read (ENOENT)',
    'example.org+ns+default+sa+junk': 'the certificate file holds no readable certificate',
  });
});

t.test('the check refuses a leaf without exactly one SPIFFE ID, and a bad key', async (t) => {
  const web = ca.issue(WEB, HOUR);
  const base = { dirName: workloadDirName(WEB), bundlePem: ca.bundlePem, now: Date.now() };
  t.match(checkStoredSvid({ ...base, chainPem: ca.generation.signerPem, keyPem: web.keyPem }), {
    ok: false,
    reason: /the leaf carries 1 URI SANs|not stored under this folder name/,
  });
  t.match(checkStoredSvid({ ...base, chainPem: web.chainPem, keyPem: 'garbage' }), {
    ok: false,
    reason: 'the key file holds no readable private key',
  });
  t.match(checkStoredSvid({ ...base, chainPem: web.chainPem, keyPem: web.keyPem, bundlePem: '' }), {
    ok: false,
    reason: 'the stored trust bundle holds no readable root',
  });
  // The leaf alone (without its signing CA) does not chain to the root.
  const leafOnly = web.chainPem.slice(0, web.chainPem.indexOf('-----END CERTIFICATE-----') + 26);
  t.match(checkStoredSvid({ ...base, chainPem: leafOnly, keyPem: web.keyPem }), { ok: false, reason: /does not lead to a root/ });
  t.match(checkStoredSvid({ ...base, chainPem: web.chainPem, keyPem: web.keyPem }), { ok: true, svid: { spiffeId: WEB } });
});

t.test('remove and prune', async (t) => {
  const dataDir = t.testdir({});
  const store = createWorkloadSvidStore(dataDir);
  t.same(await store.load(ca.bundlePem, Date.now()), { svids: [], rejected: [] }, 'nothing stored yet');
  t.same(await store.prune([]), []);
  await store.save(WEB, ca.issue(WEB, HOUR));
  await store.save(API, ca.issue(API, HOUR));
  await mkdir(path.join(workloadsDir(dataDir), 'leftover'));
  await store.remove('spiffe://example.org/ns/default/sa/never-stored');
  t.same((await store.prune([WEB])).sort(), [workloadDirName(API), 'leftover']);
  t.same(await readdir(workloadsDir(dataDir)), [workloadDirName(WEB)]);
  await store.remove(WEB);
  t.same(await readdir(workloadsDir(dataDir)), []);
});

/** The chain with its leaf's URI SAN tag (0x86, [6] uniformResourceIdentifier) changed to a constructed [6] (0xa6). */
function damagedSan(chainPem: string, spiffeId: string): string {
  const [leaf, ...rest] = fromPemAll(chainPem);
  const der = Buffer.from(leaf as Buffer);
  const at = der.indexOf(Buffer.from(spiffeId)) - 2;
  if (der[at] !== 0x86 || der[at + 1] !== spiffeId.length) throw new Error('the URI SAN is not where the test expects it');
  der[at] = 0xa6;
  return [der, ...rest].map((d) => toPem(d)).join('');
}

t.test('a leaf whose subjectAltName is damaged is refused alone; the others are served', async (t) => {
  const dataDir = t.testdir({ identity: {} });
  const store = createWorkloadSvidStore(dataDir);
  const web = ca.issue(WEB, HOUR);
  const api = ca.issue(API, HOUR);
  await store.save(WEB, web);
  await store.save(API, { ...api, chainPem: damagedSan(api.chainPem, API) });

  const check = checkStoredSvid({
    dirName: workloadDirName(API),
    chainPem: damagedSan(api.chainPem, API),
    keyPem: api.keyPem,
    bundlePem: ca.bundlePem,
    now: Date.now(),
  });
  t.match(check, { ok: false, reason: /^the leaf's subjectAltName cannot be read: .*URI in constructed form/ }, 'the check says why');

  const { svids, rejected } = await store.load(ca.bundlePem, Date.now());
  t.same(
    svids.map((s) => s.spiffeId),
    [WEB],
    'the good SVID is served',
  );
  t.match(rejected, [{ dir: workloadDirName(API), reason: /subjectAltName cannot be read/ }], 'the damaged one is skipped, saying why');
  t.notMatch(JSON.stringify(rejected), /BEGIN|PRIVATE/, 'quoting nothing');
});

t.test('a crash between writing the new key and its chain: load() serves the previous pair', async (t) => {
  const dataDir = t.testdir({ identity: {} });
  const store = createWorkloadSvidStore(dataDir);
  const before = ca.issue(WEB, HOUR);
  const after = ca.issue(WEB, HOUR);
  await store.save(WEB, before);
  const dir = path.join(workloadsDir(dataDir), workloadDirName(WEB));
  const files = { key: path.join(dir, KEY_FILE), chain: path.join(dir, CHAIN_FILE) };
  // What save() does, stopped after the new key (steps: copy chain, copy key, key, chain, ...).
  await t.rejects(writeKeyAndChain(files, after, crashingIo(3)), CRASHED);
  t.equal(await readFile(files.key, 'utf8'), after.keyPem, 'the new key is on disk');
  t.equal(await readFile(files.chain, 'utf8'), before.chainPem, 'with the old chain');

  const { svids, rejected } = await store.load(ca.bundlePem, Date.now());
  t.same(rejected, [], 'nothing refused');
  t.match(svids, [{ spiffeId: WEB, chainPem: before.chainPem, keyPem: before.keyPem }], 'the previous pair is served');

  await store.save(WEB, after);
  t.match(
    (await store.load(ca.bundlePem, Date.now())).svids,
    [{ chainPem: after.chainPem, keyPem: after.keyPem }],
    'the next save replaces it',
  );
  t.same((await readdir(dir)).sort(), [KEY_FILE, CHAIN_FILE].sort(), 'no .prev files left');
});
