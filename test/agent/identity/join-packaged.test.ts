/**
 * `mesh-agent join` on a packaged host: a host that already joined is refused
 * (MESH_E_ALREADY_JOINED) before the token is spent, its identity untouched,
 * unless --force; run as root, the identity goes to the data folder's owner
 * or the mesh-agent user (here a fake host: euid 0 and a passwd naming a
 * user whose uid the test can chown to); the next step is printed.
 */
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import t, { type Test } from 'tap';
import { identityCommands, type JoinHost } from '../../../agent/commands/identity-commands.js';
import type { ControlPlaneClient } from '../../../agent/identity/cp-client.js';
import type { ClientFactory } from '../../../agent/identity/enroll.js';
import type { Program } from '../../../lib/cli.js';
import { runProgram } from '../../support/cli.js';
import { selfSignedCert } from '../../support/openssl.js';
import { tempDir } from '../../support/temp-dir.js';

const TD = 'corp.example';
const UID = 4321;

/** A control plane that signs nothing: join answers a fixed SVID, counting calls. */
function fakeControlPlane(chainPem: string) {
  const joins: string[] = [];
  const connect = ((_opts: unknown) =>
    ({
      join: async (token: string) => {
        joins.push(token);
        return {
          spiffeId: `spiffe://${TD}/node/n1`,
          serial: `0${joins.length}`,
          notAfter: Date.UTC(2030, 0, 1),
          chainPem,
          bundle: { rootsPem: chainPem },
        };
      },
      close: () => {},
    }) as unknown as ControlPlaneClient) as unknown as ClientFactory;
  return { joins, connect };
}

const host = (euid: number): JoinHost => ({
  euid: () => euid,
  accounts: async () => ({ passwd: `root:x:0:0::/root:/bin/sh\nmesh-agent:x:${UID}:${UID}::/nonexistent:/usr/sbin/nologin\n`, group: '' }),
});

/** A temp folder, a CA file, the fake control plane, and `join(dataDir, ...extra)` as a host with this euid. */
async function joinFixture(t: Test, euid: number) {
  const dir = await tempDir(t);
  const { cert } = await selfSignedCert(dir, 'root', { subject: '/CN=root', days: 30, ext: ['basicConstraints = critical,CA:true'] });
  const cp = fakeControlPlane(await readFile(cert, 'utf8'));
  const program: Program = { name: 'mesh-agent', summary: '', version: '0', commands: identityCommands(cp.connect, host(euid)) };
  const flags = { controlplane: '127.0.0.1:1', token: 'mjt1_x', 'ca-bundle': cert, 'trust-domain': TD };
  const argv = Object.entries(flags).flatMap(([flag, value]) => [`--${flag}`, value]);
  const join = (dataDir: string, ...extra: string[]) => runProgram(program, ['join', ...argv, '--data-dir', dataDir, ...extra]);
  return { dir, cp, join };
}

t.test('join refuses a joined host, leaving its identity untouched, unless --force', async (t) => {
  const fx = await joinFixture(t, 1000);
  const cp = fx.cp;
  const dataDir = path.join(fx.dir, 'state');
  const join = (...extra: string[]) => fx.join(dataDir, ...extra);

  const first = await join();
  t.equal(first.code, 0, first.err);
  t.match(first.out, /joined as: spiffe:\/\/corp\.example\/node\/n1/);
  t.match(first.out, /next: systemctl enable --now mesh-agent/);
  const key = path.join(dataDir, 'identity', 'node.key');
  const before = await readFile(key, 'utf8');

  const again = await join();
  t.equal(again.code, 1);
  t.match(again.err, /MESH_E_ALREADY_JOINED: this host already joined the mesh as spiffe:\/\/corp\.example\/node\/n1 .*--force/);
  t.equal(cp.joins.length, 1, 'the token was not spent');
  t.equal(await readFile(key, 'utf8'), before, 'the node key is untouched');

  const forced = await join('--force', '--json');
  t.equal(forced.code, 0, forced.err);
  t.match(JSON.parse(forced.out), { spiffeId: `spiffe://${TD}/node/n1`, serial: '02', next: 'systemctl enable --now mesh-agent' });
  t.not(await readFile(key, 'utf8'), before, '--force: a new node key');
  t.equal(cp.joins.length, 2);
});

const notRoot = process.getuid?.() === 0 ? false : 'chown needs root (CI runs as root)';
t.test('join as root gives the identity to mesh-agent (or the data folder owner, or --owner)', { skip: notRoot }, async (t) => {
  const { dir, join } = await joinFixture(t, 0);
  const owners = async (dataDir: string) =>
    Promise.all(
      [
        dataDir,
        path.join(dataDir, 'identity'),
        ...['node.key', 'node.pem', 'bundle.pem', 'node.json'].map((f) => path.join(dataDir, 'identity', f)),
      ].map(async (p) => (await stat(p)).uid),
    );

  const packaged = path.join(dir, 'var-lib-mesh-agent');
  const r = await join(packaged);
  t.equal(r.code, 0, r.err);
  t.match(r.out, new RegExp(`owner +mesh-agent \\(uid ${UID}\\)\\nnext: systemctl enable --now mesh-agent`));
  t.same(await owners(packaged), [UID, UID, UID, UID, UID, UID], 'the data folder and every identity file belong to mesh-agent');
  t.equal((await stat(path.join(packaged, 'identity', 'node.key'))).mode & 0o777, 0o600, 'the key stays 0600');

  const explicit = path.join(dir, 'other');
  const r2 = await join(explicit, '--owner', '0');
  t.equal(r2.code, 0, r2.err);
  t.same(await owners(explicit), [0, 0, 0, 0, 0, 0], '--owner wins');

  const bad = await join(path.join(dir, 'third'), '--owner', 'nobody-here');
  t.equal(bad.code, 2);
  t.match(bad.err, /--owner nobody-here: no such user/);
});
