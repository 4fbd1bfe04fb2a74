/**
 * meshctl in-process against a real in-process control plane: tokens, bundle,
 * CA status, rotation and imports (operator CAs made with the openssl CLI),
 * nodes, audit, backup and status, plus the errors an operator meets.
 */
import { X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import Database from 'better-sqlite3';
import t, { type Test } from 'tap';
import { agentProgram } from '../../agent/program.js';
import { meshctlProgram } from '../../controlplane/cli/program.js';
import { run } from '../../lib/exec.js';
import { fromPemAll } from '../../lib/x509/pem.js';
import { type CliResult, runProgram } from '../support/cli.js';
import { startTestControlPlane, type TestControlPlane } from '../support/controlplane.js';
import { issuedCert, selfSignedCert } from '../support/openssl.js';
import { verifySvid } from '../support/svid-verify.js';
import { tempDir } from '../support/temp-dir.js';

t.setTimeout(240_000);

const ctl = (dataDir: string, ...argv: string[]) => runProgram(meshctlProgram(), [...argv, '--data-dir', dataDir]);
const agent = (...argv: string[]) => runProgram(agentProgram(), argv);

async function startCp(t: Test): Promise<TestControlPlane> {
  const tcp = await startTestControlPlane();
  t.teardown(() => tcp.stop());
  return tcp;
}

/** `mesh-agent join` in-process with a token from meshctl, in a new agent data dir. */
async function joinNode(t: Test, tcp: TestControlPlane, node: string, allow: string): Promise<string> {
  const work = await tempDir(t, 'mesh-agent-');
  const created = await ctl(tcp.dataDir, 'token', 'create', '--node', node, '--allow', allow);
  t.equal(created.code, 0, `token for ${node}: ${created.err}`);
  await writeFile(path.join(work, 'token'), created.out);
  await writeFile(path.join(work, 'bundle.pem'), (await ctl(tcp.dataDir, 'ca', 'bundle')).out);
  const joined = await agent(
    'join',
    '--controlplane',
    tcp.cp.address,
    '--token-file',
    path.join(work, 'token'),
    '--ca-bundle',
    path.join(work, 'bundle.pem'),
    '--data-dir',
    path.join(work, 'agent'),
    '--json',
  );
  t.equal(joined.code, 0, `join ${node}: ${joined.err}`);
  t.equal(JSON.parse(joined.out).spiffeId, `spiffe://example.org/mesh/node/${node}`);
  return work;
}

async function fetchSvid(work: string, spiffeId: string): Promise<CliResult> {
  return agent(
    'svid',
    'fetch',
    '--data-dir',
    path.join(work, 'agent'),
    '--spiffe-id',
    spiffeId,
    '--write',
    path.join(work, 'out'),
    '--json',
  );
}

/** A self-signed EC certificate of the operator (a CA unless `ca: false`) with an optional URI SAN: <name>.pem and <name>.key. */
function opensslRoot(dir: string, name: string, options: { uri?: string; ca?: boolean; curve?: 'P-256' | 'P-384' } = {}) {
  const ca = options.ca ?? true;
  return selfSignedCert(dir, name, {
    subject: `/O=Operator/CN=${name}`,
    key: options.curve ?? 'P-256',
    days: 365,
    ext: [
      ca ? 'basicConstraints = critical,CA:true' : 'basicConstraints = critical,CA:false',
      ca ? 'keyUsage = critical,keyCertSign,cRLSign' : 'keyUsage = critical,digitalSignature',
      'subjectKeyIdentifier = hash',
      ...(options.uri ? [`subjectAltName = URI:${options.uri}`] : []),
    ],
  });
}

/** An EC P-256 intermediate CA <name>.pem/.key issued by <issuer>.pem/.key. */
function opensslIntermediate(dir: string, name: string, issuer: string, uri: string) {
  const files = { cert: path.join(dir, `${issuer}.pem`), key: path.join(dir, `${issuer}.key`) };
  return issuedCert(dir, name, files, {
    subject: `/O=Operator/CN=${name}`,
    serial: '4242',
    days: 200,
    ext: [
      'basicConstraints = critical,CA:true',
      'keyUsage = critical,keyCertSign,cRLSign',
      'subjectKeyIdentifier = hash',
      'authorityKeyIdentifier = keyid',
      `subjectAltName = URI:${uri}`,
    ],
  });
}

interface CaStatusJson {
  generations: Array<{ id: number; state: string; source: string; root_subject: string; root_fingerprint: string }>;
  bundle_sequence: number;
  message: string;
}

async function caStatus(tcp: TestControlPlane): Promise<CaStatusJson> {
  const r = await ctl(tcp.dataDir, 'ca', 'status', '--json');
  if (r.code !== 0) throw new Error(r.err);
  return JSON.parse(r.out) as CaStatusJson;
}

const WORKLOAD = 'spiffe://example.org/ns/default/sa/web';

/** `meshctl ca import --json` of <dir>/<cert>.pem with its key, and --chain <dir>/<chain>.pem if given. */
function caImport(tcp: TestControlPlane, dir: string, cert: string, chain?: string): Promise<CliResult> {
  const files = ['--cert', path.join(dir, `${cert}.pem`), '--key', path.join(dir, `${cert}.key`)];
  return ctl(tcp.dataDir, 'ca', 'import', ...files, ...(chain === undefined ? [] : ['--chain', path.join(dir, `${chain}.pem`)]), '--json');
}

/** Node vm1 joins and fetches WORKLOAD's SVID (from the active CA); its chain, PEM. */
async function issuedChain(t: Test, tcp: TestControlPlane): Promise<string> {
  const work = await joinNode(t, tcp, 'vm1', WORKLOAD);
  const fetched = await fetchSvid(work, WORKLOAD);
  t.equal(fetched.code, 0, fetched.err);
  return readFile(path.join(work, 'out', 'svid.pem'), 'utf8');
}

t.test('token create prints only the token; --json; usage errors', async (t) => {
  const tcp = await startCp(t);
  const plain = await ctl(
    tcp.dataDir,
    'token',
    'create',
    '--node',
    'vm1',
    '--allow',
    'spiffe://example.org/ns/default/sa/*',
    '--ttl',
    '5m',
  );
  t.equal(plain.code, 0, plain.err);
  t.match(plain.out, /^mjt1_[A-Za-z0-9_-]{43}\n$/, 'exactly one line: the token');
  t.equal(plain.err, '');

  const before = Date.now();
  const json = await ctl(tcp.dataDir, 'token', 'create', '--node', 'vm2', '--ttl', '5m', '--json');
  t.equal(json.code, 0, json.err);
  t.equal(json.out.split('\n').length, 2, 'one JSON line');
  const parsed = JSON.parse(json.out) as { token: string; expiresAt: string; nodeSpiffeId: string };
  t.match(parsed.token, /^mjt1_/);
  t.equal(parsed.nodeSpiffeId, 'spiffe://example.org/mesh/node/vm2');
  const expires = Date.parse(parsed.expiresAt);
  t.ok(expires >= before + 5 * 60_000 - 1000 && expires <= Date.now() + 5 * 60_000 + 1000, 'expires in 5 minutes');

  const noNode = await ctl(tcp.dataDir, 'token', 'create', '--ttl', '5m');
  t.equal(noNode.code, 2);
  t.match(noNode.err, /MESH_E_USAGE.*--node/);
  t.equal(noNode.out, '');

  const tooLong = await ctl(tcp.dataDir, 'token', 'create', '--node', 'vm1', '--ttl', '48h');
  t.equal(tooLong.code, 2, 'over maxTokenTtl (24h)');
  t.match(tooLong.err, /MESH_E_USAGE: token TTL must be between/);
  const foreign = await ctl(tcp.dataDir, 'token', 'create', '--node', 'vm1', '--allow', 'spiffe://other.org/ns/a/sa/*');
  t.equal(foreign.code, 1);
  t.match(foreign.err, /MESH_E_NOT_AUTHORIZED: .*outside the trust domain example\.org/);
  t.equal(foreign.out, '');

  const badTtl = await ctl(tcp.dataDir, 'token', 'create', '--node', 'vm1', '--ttl', 'soon');
  t.equal(badTtl.code, 2);
  t.match(badTtl.err, /MESH_E_USAGE: --ttl soon/);
  t.equal(badTtl.out, '');
});

t.test('ca bundle, ca status (table and --json), status --json', async (t) => {
  const tcp = await startCp(t);
  const bundle = await ctl(tcp.dataDir, 'ca', 'bundle');
  t.equal(bundle.code, 0, bundle.err);
  t.equal(bundle.out, tcp.bundlePem(), 'the PEM bundle');
  t.equal(fromPemAll(bundle.out).length, 1);

  const table = await ctl(tcp.dataDir, 'ca', 'status');
  t.equal(table.code, 0, table.err);
  const lines = table.out.trimEnd().split('\n');
  t.match(lines[0], /^GENERATION\s+STATE\s+SOURCE\s+ROOT\s+ROOT EXPIRES\s+ROOT SHA-256$/);
  t.match(lines[1], /^1\s+active\s+generated\s+/);
  t.match(lines.at(-1), /^bundle sequence 1$/);

  const status = await caStatus(tcp);
  t.equal(status.generations.length, 1);
  t.match(status.generations[0], { id: 1, state: 'active', source: 'generated' });
  const root = new X509Certificate(bundle.out);
  t.equal(status.generations[0]?.root_fingerprint, root.fingerprint256.replace(/:/g, '').toLowerCase());
  t.ok(lines[1]?.includes(`${status.generations[0]?.root_fingerprint.slice(0, 16)}…`), 'table shows the fingerprint prefix');

  const s = await ctl(tcp.dataDir, 'status', '--json');
  t.equal(s.code, 0, s.err);
  t.match(JSON.parse(s.out), {
    trust_domain: 'example.org',
    listen: tcp.cp.address,
    nodes_active: 0,
    nodes_revoked: 0,
    active_generation: 1,
    bundle_sequence: 1,
  });
  const human = await ctl(tcp.dataDir, 'status');
  t.match(human.out, /trust domain\s+example\.org/);
});

t.test('join, node list, node revoke, svid fetch refused, audit', async (t) => {
  const tcp = await startCp(t);
  const work = await joinNode(t, tcp, 'vm1', 'spiffe://example.org/ns/default/sa/*');

  const fetched = await fetchSvid(work, WORKLOAD);
  t.equal(fetched.code, 0, fetched.err);

  const list = await ctl(tcp.dataDir, 'node', 'list', '--json');
  t.equal(list.code, 0, list.err);
  const nodes = JSON.parse(list.out) as Array<Record<string, unknown>>;
  t.equal(nodes.length, 1);
  t.match(nodes[0], {
    name: 'vm1',
    spiffe_id: 'spiffe://example.org/mesh/node/vm1',
    status: 'active',
    allow: ['spiffe://example.org/ns/default/sa/*'],
  });
  t.ok(Number(nodes[0]?.joined_at_ms) > 0);

  const revoke = await ctl(tcp.dataDir, 'node', 'revoke', 'vm1');
  t.equal(revoke.code, 0, revoke.err);
  t.equal(revoke.out, 'node vm1: revoked\n');

  const table = await ctl(tcp.dataDir, 'node', 'list');
  t.match(table.out, /^NAME\s+STATUS/);
  t.match(table.out, /\nvm1\s+revoked\s+/);

  const refused = await fetchSvid(work, WORKLOAD);
  t.equal(refused.code, 1);
  t.match(refused.err, /MESH_E_NODE_REVOKED/);
  t.equal(refused.out, '');

  const noName = await ctl(tcp.dataDir, 'node', 'revoke');
  t.equal(noName.code, 2);
  const unknown = await ctl(tcp.dataDir, 'node', 'revoke', 'nope');
  t.equal(unknown.code, 1);
  t.match(unknown.err, /MESH_E_NODE_UNKNOWN/);

  const audit = await ctl(tcp.dataDir, 'audit', '--json');
  t.equal(audit.code, 0, audit.err);
  const entries = audit.out
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, string>);
  t.ok(
    entries.some((e) => e.action === 'node.join' && e.result === 'ok' && e.spiffe_id === 'spiffe://example.org/mesh/node/vm1'),
    'node.join ok',
  );
  t.ok(
    entries.some((e) => e.action === 'node.revoke' && e.result === 'ok' && e.spiffe_id === 'spiffe://example.org/mesh/node/vm1'),
    'node.revoke ok',
  );
  t.ok(
    entries.some((e) => e.action === 'svid.sign' && e.result === 'MESH_E_NODE_REVOKED'),
    'the refused signing is audited with its code',
  );
  for (const e of entries) t.match(e.at, /^\d{4}-\d\d-\d\dT/);

  const limited = await ctl(tcp.dataDir, 'audit', '--json', '--limit', '1');
  t.equal(limited.out.trim().split('\n').length, 1);
  const badLimit = await ctl(tcp.dataDir, 'audit', '--limit', '0');
  t.equal(badLimit.code, 2);
  t.match(badLimit.err, /--limit/);
  const human = await ctl(tcp.dataDir, 'audit');
  t.match(human.out, /^TIME\s+ACTOR\s+ACTION\s+RESULT/);

  const s = JSON.parse((await ctl(tcp.dataDir, 'status', '--json')).out);
  t.match(s, { nodes_active: 0, nodes_revoked: 1 });
  t.ok(s.certificates >= 2, 'node and workload certificates counted');
});

t.test('backup: a consistent SQLite copy; refuses an existing file; relative --out', async (t) => {
  const tcp = await startCp(t);
  await joinNode(t, tcp, 'vm1', WORKLOAD);
  const dir = await tempDir(t);
  const out = path.join(dir, 'cp.backup.db');

  const r = await ctl(tcp.dataDir, 'backup', '--out', out, '--json');
  t.equal(r.code, 0, r.err);
  const result = JSON.parse(r.out) as { out: string; bytes: number; pages: number };
  t.equal(result.out, out);
  t.ok(result.bytes > 0 && result.pages > 0);

  const db = new Database(out, { readonly: true, fileMustExist: true });
  try {
    t.same(db.pragma('integrity_check'), [{ integrity_check: 'ok' }]);
    const certs = db.prepare('SELECT COUNT(*) AS n FROM certificates').get() as { n: number };
    t.ok(certs.n >= 2, 'the server and node certificates are in the backup');
    const bytes = await readFile(out);
    t.notOk(bytes.includes('PRIVATE KEY'), 'no private key in the backup');
    const nodes = db.prepare('SELECT name FROM nodes').all();
    t.same(nodes, [{ name: 'vm1' }]);
  } finally {
    db.close();
  }

  const again = await ctl(tcp.dataDir, 'backup', '--out', out);
  t.not(again.code, 0);
  t.match(again.err, /already exists/);

  const missing = await ctl(tcp.dataDir, 'backup');
  t.equal(missing.code, 2);
  t.match(missing.err, /--out/);

  const cwd = process.cwd();
  process.chdir(dir);
  try {
    const rel = await ctl(tcp.dataDir, 'backup', '--out', 'relative.db');
    t.equal(rel.code, 0, rel.err);
    t.match(rel.out, `backup written to ${path.join(dir, 'relative.db')} (`);
  } finally {
    process.chdir(cwd);
  }
  const relDb = new Database(path.join(dir, 'relative.db'), { readonly: true, fileMustExist: true });
  t.same(relDb.pragma('integrity_check'), [{ integrity_check: 'ok' }]);
  relDb.close();
});

t.test('ca rotate through meshctl: retire out of order, prepare, activate, retire --force', async (t) => {
  const tcp = await startCp(t);
  await joinNode(t, tcp, 'vm1', WORKLOAD);
  const early = await ctl(tcp.dataDir, 'ca', 'rotate', 'retire');
  t.equal(early.code, 1);
  t.match(early.err, /MESH_E_CA_ROTATION_STATE/);
  const earlyActivate = await ctl(tcp.dataDir, 'ca', 'rotate', 'activate');
  t.equal(earlyActivate.code, 1);
  t.match(earlyActivate.err, /MESH_E_CA_ROTATION_STATE/);

  const prepare = await ctl(tcp.dataDir, 'ca', 'rotate', 'prepare', '--json');
  t.equal(prepare.code, 0, prepare.err);
  const prepared = JSON.parse(prepare.out) as CaStatusJson;
  t.same(
    prepared.generations.map((g) => [g.id, g.state]),
    [
      [1, 'active'],
      [2, 'prepared'],
    ],
  );
  t.equal(prepared.bundle_sequence, 2);
  t.match(prepared.message, /generation 2 prepared/);
  t.equal(fromPemAll((await ctl(tcp.dataDir, 'ca', 'bundle')).out).length, 2, 'both roots in the bundle');

  const again = await ctl(tcp.dataDir, 'ca', 'rotate', 'prepare');
  t.equal(again.code, 1);
  t.match(again.err, /MESH_E_CA_ROTATION_STATE/);

  const activate = await ctl(tcp.dataDir, 'ca', 'rotate', 'activate');
  t.equal(activate.code, 0, activate.err);
  t.match(activate.out, /generation 2 now signs/);
  t.match(activate.out, /\n1\s+previous\s+generated/);
  t.match(activate.out, /\n2\s+active\s+generated/);

  // vm1's node SVID (issued by generation 1) is unexpired, so retire needs --force.
  const busy = await ctl(tcp.dataDir, 'ca', 'rotate', 'retire');
  t.equal(busy.code, 1);
  t.match(busy.err, /MESH_E_CA_ROOT_IN_USE: \d+ unexpired certificate/);
  t.equal((await caStatus(tcp)).generations.length, 2, 'nothing retired');
  const retire = await ctl(tcp.dataDir, 'ca', 'rotate', 'retire', '--force', '--json');
  t.equal(retire.code, 0, retire.err);
  const status = JSON.parse(retire.out) as CaStatusJson;
  t.same(
    status.generations.map((g) => [g.id, g.state]),
    [[2, 'active']],
  );
  t.match(status.message, /generation 1 retired/);
  const bundle = (await ctl(tcp.dataDir, 'ca', 'bundle')).out;
  t.equal(fromPemAll(bundle).length, 1, 'only the new root is left');
  t.equal(bundle, tcp.bundlePem());

  const audit = (await ctl(tcp.dataDir, 'audit', '--json')).out;
  for (const action of ['ca.rotate.prepare', 'ca.rotate.activate', 'ca.rotate.retire']) t.match(audit, `"action":"${action}"`);
});

t.test('ca import: an operator root made with openssl signs after activate', async (t) => {
  const tcp = await startCp(t);
  const dir = await tempDir(t);
  await opensslRoot(dir, 'oproot', { uri: 'spiffe://example.org' });

  const imported = await caImport(tcp, dir, 'oproot');
  t.equal(imported.code, 0, imported.err);
  const status = JSON.parse(imported.out) as CaStatusJson;
  t.match(status.generations[1], { id: 2, state: 'prepared', source: 'imported' });
  t.match(status.generations[1]?.root_subject, /CN=oproot/);
  t.match(status.message, /imported as generation 2/);

  const second = await ctl(tcp.dataDir, 'ca', 'import', '--cert', path.join(dir, 'oproot.pem'), '--key', path.join(dir, 'oproot.key'));
  t.equal(second.code, 1, 'a second import while one is prepared');
  t.match(second.err, /MESH_E_CA_ROTATION_STATE: a prepared CA already exists/);

  const activate = await ctl(tcp.dataDir, 'ca', 'rotate', 'activate');
  t.equal(activate.code, 0, activate.err);

  const chainPem = await issuedChain(t, tcp);
  const bundle = (await ctl(tcp.dataDir, 'ca', 'bundle')).out;
  const verified = await verifySvid(chainPem, bundle);
  t.match(verified, { ok: true, spiffe_id: WORKLOAD });
  const rootPem = await readFile(path.join(dir, 'oproot.pem'), 'utf8');
  t.match(await verifySvid(chainPem, rootPem), { ok: true }, 'chains to the operator root alone');
});

t.test('ca import: an intermediate with --chain made with openssl signs after activate', async (t) => {
  const tcp = await startCp(t);
  const dir = await tempDir(t);
  await opensslRoot(dir, 'oproot', { uri: 'spiffe://example.org' });
  await opensslIntermediate(dir, 'opint', 'oproot', 'spiffe://example.org');

  const imported = await caImport(tcp, dir, 'opint', 'oproot');
  t.equal(imported.code, 0, imported.err);
  const status = JSON.parse(imported.out) as CaStatusJson;
  t.match(status.generations[1], { id: 2, state: 'prepared', source: 'imported' });
  t.match(status.generations[1]?.root_subject, /CN=oproot/);

  t.equal((await ctl(tcp.dataDir, 'ca', 'rotate', 'activate')).code, 0);
  const chainPem = await issuedChain(t, tcp);
  const chain = fromPemAll(chainPem).map((der) => new X509Certificate(der));
  t.match(chain[1]?.subject, /CN=opint/, 'the operator intermediate signed the leaf');
  t.match(await verifySvid(chainPem, (await ctl(tcp.dataDir, 'ca', 'bundle')).out), { ok: true, spiffe_id: WORKLOAD });
  t.match(await verifySvid(chainPem, await readFile(path.join(dir, 'oproot.pem'), 'utf8')), { ok: true });
});

t.test('ca import errors change nothing', async (t) => {
  const tcp = await startCp(t);
  const dir = await tempDir(t);
  await opensslRoot(dir, 'leafish', { uri: 'spiffe://example.org', ca: false });
  await opensslRoot(dir, 'oproot', { uri: 'spiffe://example.org' });
  await opensslRoot(dir, 'other', { uri: 'spiffe://example.org' });
  await opensslRoot(dir, 'foreign', { uri: 'spiffe://other.org' });
  await opensslRoot(dir, 'p384', { uri: 'spiffe://example.org', curve: 'P-384' });
  await opensslIntermediate(dir, 'opint', 'oproot', 'spiffe://example.org');
  const before = await caStatus(tcp);
  const keysBefore = await run('ls', [path.join(tcp.dataDir, 'ca')]);

  const f = (name: string) => path.join(dir, name);
  const cases: Array<[string, string[], RegExp]> = [
    ['not a CA', ['--cert', f('leafish.pem'), '--key', f('leafish.key')], /not a CA/],
    ['key not matching', ['--cert', f('oproot.pem'), '--key', f('other.key')], /does not belong/],
    ['intermediate without chain', ['--cert', f('opint.pem'), '--key', f('opint.key')], /needs --chain/],
    ['chain of another root', ['--cert', f('opint.pem'), '--key', f('opint.key'), '--chain', f('other.pem')], /chain is broken/],
    ['wrong trust domain', ['--cert', f('foreign.pem'), '--key', f('foreign.key')], /spiffe:\/\/other\.org/],
    [
      'a key the CA cannot sign with (P-384)',
      ['--cert', f('p384.pem'), '--key', f('p384.key')],
      /key type ec \(secp384r1\) cannot sign here/,
    ],
  ];
  for (const [what, args, message] of cases) {
    const r = await ctl(tcp.dataDir, 'ca', 'import', ...args);
    t.equal(r.code, 1, what);
    t.match(r.err, /MESH_E_CA_IMPORT_INVALID/, what);
    t.match(r.err, message, what);
    t.equal(r.out, '', what);
    t.same(await caStatus(tcp), before, `${what}: ca status unchanged`);
  }
  t.equal((await run('ls', [path.join(tcp.dataDir, 'ca')])).stdout, keysBefore.stdout, 'no key file left behind');

  const missingKey = await ctl(tcp.dataDir, 'ca', 'import', '--cert', f('oproot.pem'));
  t.equal(missingKey.code, 2);
  t.match(missingKey.err, /--key FILE is required/);
  const unreadable = await ctl(tcp.dataDir, 'ca', 'import', '--cert', f('nope.pem'), '--key', f('oproot.key'));
  t.equal(unreadable.code, 2);
  t.match(unreadable.err, /--cert .*nope\.pem: ENOENT/);
  t.same(await caStatus(tcp), before);
  t.equal((await ctl(tcp.dataDir, 'ca', 'bundle')).out, tcp.bundlePem());
});

t.test('no control plane running: MESH_E_CONTROLPLANE_UNAVAILABLE naming the socket', async (t) => {
  const dir = await tempDir(t);
  for (const argv of [['status'], ['ca', 'bundle'], ['node', 'list']]) {
    const r = await ctl(dir, ...argv);
    t.equal(r.code, 1, argv.join(' '));
    t.match(r.err, /MESH_E_CONTROLPLANE_UNAVAILABLE/);
    t.ok(r.err.includes(path.join(dir, 'admin.sock')), 'names the socket');
  }
});

t.test('a stale admin.sock with nothing listening: MESH_E_CONTROLPLANE_UNAVAILABLE naming the socket', async (t) => {
  const dir = await tempDir(t);
  await writeFile(path.join(dir, 'admin.sock'), '');
  const r = await ctl(dir, 'status');
  t.equal(r.code, 1);
  t.match(r.err, /MESH_E_CONTROLPLANE_UNAVAILABLE/);
  t.ok(r.err.includes(path.join(dir, 'admin.sock')), 'names the socket');
});

t.test('every meshctl command prints usage for --help', async (t) => {
  const program = meshctlProgram();
  for (const command of program.commands) {
    const r = await runProgram(program, [...command.name.split(' '), '--help']);
    t.equal(r.code, 0, command.name);
    t.ok(r.out.startsWith(`Usage: meshctl ${command.name}`), command.name);
    t.equal(r.err, '');
    // version and cert inspect work offline, without the control plane's data folder.
    if (command.name !== 'version' && command.name !== 'cert inspect')
      t.match(r.out, /--data-dir DIR/, `${command.name} documents --data-dir`);
  }
  t.ok(program.commands.length >= 13);
});
