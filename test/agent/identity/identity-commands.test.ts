/**
 * mesh-agent join | renew | svid fetch on the command line: usage errors that
 * name the flag, a bundle without a trust domain, commands before join, and
 * the --json output against a real in-process control plane.
 */
import { X509Certificate } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { identityCommands } from '../../../agent/commands/identity-commands.js';
import type { ClientOptions, ControlPlaneClient } from '../../../agent/identity/cp-client.js';
import { agentProgram } from '../../../agent/program.js';
import type { Program } from '../../../lib/cli.js';
import { runProgram } from '../../support/cli.js';
import { startTestControlPlane } from '../../support/controlplane.js';
import { selfSignedCert } from '../../support/openssl.js';
import { tempDir } from '../../support/temp-dir.js';

t.setTimeout(120_000);

const agent = (...argv: string[]) => runProgram(agentProgram(), argv);

/** A self-signed EC P-256 CA certificate without any URI SAN, made with openssl. */
async function plainRoot(dir: string): Promise<string> {
  return (await selfSignedCert(dir, 'plain', { subject: '/CN=plain root', days: 30, ext: ['basicConstraints = critical,CA:true'] })).cert;
}

t.test('join usage errors name the flag (exit 2)', async (t) => {
  const dir = await tempDir(t);
  const bundle = path.join(dir, 'bundle.pem');
  await writeFile(bundle, 'not used');
  await writeFile(path.join(dir, 'token'), 'mjt1_x\n');
  const base = ['--ca-bundle', bundle, '--data-dir', path.join(dir, 'a')];

  let r = await agent('join', '--token', 'mjt1_x', ...base);
  t.equal(r.code, 2);
  t.match(r.err, /MESH_E_USAGE: mesh-agent join: --controlplane is required/);
  t.match(r.err, /Usage: mesh-agent join/, 'usage follows');

  r = await agent('join', '--controlplane', '127.0.0.1:1', ...base);
  t.equal(r.code, 2);
  t.match(r.err, /--token or --token-file is required/);

  await writeFile(path.join(dir, 'empty'), '\n');
  r = await agent('join', '--controlplane', '127.0.0.1:1', '--token-file', path.join(dir, 'empty'), ...base);
  t.equal(r.code, 2, 'an empty token file is no token');
  t.match(r.err, /--token or --token-file is required/);

  r = await agent('join', '--controlplane', '127.0.0.1:1', '--token-file', path.join(dir, 'nope'), ...base);
  t.equal(r.code, 2);
  t.match(r.err, /--token-file .*nope: ENOENT/);

  r = await agent('join', '--controlplane', '127.0.0.1:1', '--token', 'mjt1_x', '--ca-bundle', path.join(dir, 'missing.pem'));
  t.equal(r.code, 2);
  t.match(r.err, /--ca-bundle .*missing\.pem: ENOENT/);

  r = await agent('join', '--controlplane', '127.0.0.1:1', '--token', 'mjt1_x', '--ca-bundle', dir);
  t.equal(r.code, 2, 'a folder is not a readable bundle');
  t.match(r.err, /--ca-bundle .*EISDIR/);

  // --data-dir may be left out: the packaged host's /var/lib/mesh-agent (run in the booted container by packages-boot.test.ts).
  r = await agent('join', '--help');
  t.equal(r.code, 0);
  t.match(r.out, /--data-dir DIR .*\n\s+default \/var\/lib\/mesh-agent/);

  r = await agent('join', '--controlplane', '127.0.0.1:1', '--token', 'mjt1_x', '--bogus', ...base);
  t.equal(r.code, 2);
  t.match(r.err, /--bogus/);
  t.equal(r.out, '');
});

t.test('a bundle whose roots carry no spiffe:// URI needs --trust-domain', async (t) => {
  const dir = await tempDir(t);
  const bundle = await plainRoot(dir);
  t.equal(new X509Certificate(await readFile(bundle)).subjectAltName, undefined, 'the root has no SAN');

  const r = await agent('join', '--controlplane', '127.0.0.1:1', '--token', 'mjt1_x', '--ca-bundle', bundle, '--data-dir', dir);
  t.equal(r.code, 2);
  t.match(r.err, /MESH_E_USAGE: the CA bundle names no trust domain .*pass --trust-domain/);

  // With --trust-domain the join goes ahead with that trust domain.
  const seen: ClientOptions[] = [];
  const fake = (options: ClientOptions): ControlPlaneClient => {
    seen.push(options);
    return {
      join: async () => {
        throw new Error('no control plane here');
      },
      renewNode: async () => {
        throw new Error('unused');
      },
      signWorkload: async () => {
        throw new Error('unused');
      },
      getBundle: async () => {
        throw new Error('unused');
      },
      watchPolicy: () => () => undefined,
      watchBundle: () => () => {},
      close: () => {},
    };
  };
  const program: Program = { name: 'mesh-agent', summary: 'test', version: '0.0.0', commands: identityCommands(fake) };
  const r2 = await runProgram(program, [
    'join',
    '--controlplane',
    '127.0.0.1:1',
    '--token',
    'mjt1_x',
    '--ca-bundle',
    bundle,
    '--data-dir',
    dir,
    '--trust-domain',
    'corp.example',
  ]);
  t.equal(r2.code, 1);
  t.match(r2.err, /no control plane here/);
  t.equal(seen.length, 1);
  t.match(seen[0], { address: '127.0.0.1:1', trustDomain: 'corp.example' });
  t.equal(seen[0]?.bundlePem, await readFile(bundle, 'utf8'));
});

t.test('renew and svid fetch before join: MESH_E_NOT_JOINED', async (t) => {
  const dir = await tempDir(t);
  let r = await agent('renew', '--data-dir', dir);
  t.equal(r.code, 1);
  t.match(r.err, /MESH_E_NOT_JOINED: no node identity in .*identity: run mesh-agent join first/);

  r = await agent('svid', 'fetch', '--data-dir', dir, '--spiffe-id', 'spiffe://example.org/ns/a/sa/b', '--write', path.join(dir, 'o'));
  t.equal(r.code, 1);
  t.match(r.err, /MESH_E_NOT_JOINED/);

  // Without --data-dir: the packaged /var/lib/mesh-agent (not run here: it is this host's real folder).
  r = await agent('renew', '--help');
  t.match(r.out, /--data-dir DIR .*\(default \/var\/lib\/mesh-agent\)/);
  r = await agent('svid', 'fetch', '--data-dir', dir, '--spiffe-id', 'spiffe://example.org/ns/a/sa/b');
  t.equal(r.code, 2);
  t.match(r.err, /--write is required/);
});

t.test('join, renew and svid fetch --json against a real control plane', async (t) => {
  const tcp = await startTestControlPlane();
  t.teardown(() => tcp.stop());
  const dir = await tempDir(t);
  const id = 'spiffe://example.org/ns/default/sa/web';
  await writeFile(path.join(dir, 'bundle.pem'), tcp.bundlePem());
  await writeFile(path.join(dir, 'token'), `${tcp.token('vm1', ['spiffe://example.org/ns/default/sa/*'])}\n`);
  const agentDir = path.join(dir, 'agent');

  const joined = await agent(
    'join',
    '--controlplane',
    tcp.cp.address,
    '--token-file',
    path.join(dir, 'token'),
    '--ca-bundle',
    path.join(dir, 'bundle.pem'),
    '--data-dir',
    agentDir,
  );
  t.equal(joined.code, 0, joined.err);
  t.match(joined.out, /^joined as: spiffe:\/\/example\.org\/mesh\/node\/vm1\n {2}serial {3}[0-9A-F]+\n {2}expires {2}\d{4}-/);
  t.equal(((await stat(path.join(agentDir, 'identity', 'node.key'))).mode & 0o777).toString(8), '600');
  t.equal(((await stat(path.join(agentDir, 'identity'))).mode & 0o777).toString(8), '700');

  const renewed = await agent('renew', '--data-dir', agentDir, '--json');
  t.equal(renewed.code, 0, renewed.err);
  const r = JSON.parse(renewed.out) as Record<string, unknown>;
  t.equal(r.spiffeId, 'spiffe://example.org/mesh/node/vm1');

  const out = path.join(dir, 'out');
  const fetched = await agent('svid', 'fetch', '--data-dir', agentDir, '--spiffe-id', id, '--write', out, '--json');
  t.equal(fetched.code, 0, fetched.err);
  t.equal(fetched.out.split('\n').length, 2, 'one JSON line');
  const s = JSON.parse(fetched.out) as { spiffeId: string; serial: string; notAfter: string; files: Record<string, string> };
  t.same(Object.keys(s).sort(), ['files', 'notAfter', 'serial', 'spiffeId']);
  t.equal(s.spiffeId, id);
  t.match(s.serial, /^[0-9A-F]+$/);
  t.same(s.files, { svid: path.join(out, 'svid.pem'), key: path.join(out, 'svid.key'), bundle: path.join(out, 'bundle.pem') });
  const leaf = new X509Certificate(await readFile(s.files.svid as string));
  t.equal(leaf.subjectAltName, `URI:${id}`);
  t.equal(new Date(leaf.validTo).getTime(), Date.parse(s.notAfter), 'notAfter is the leaf expiry, as ISO text');
  // The same number: compared as integers, since either hex text may carry a leading zero nibble or byte.
  t.equal(BigInt(`0x${leaf.serialNumber}`), BigInt(`0x${s.serial}`), "the serial is the leaf's");
  t.equal(((await stat(s.files.key as string)).mode & 0o777).toString(8), '600');
  t.equal(await readFile(s.files.bundle as string, 'utf8'), tcp.bundlePem());

  const denied = await agent('svid', 'fetch', '--data-dir', agentDir, '--spiffe-id', 'spiffe://example.org/ns/other/sa/db', '--write', out);
  t.equal(denied.code, 1);
  t.match(denied.err, /MESH_E_NOT_AUTHORIZED/);
  const invalid = await agent('svid', 'fetch', '--data-dir', agentDir, '--spiffe-id', 'http://nope', '--write', out);
  t.equal(invalid.code, 1);
  t.match(invalid.err, /MESH_E_SPIFFE_ID_INVALID/);
});
