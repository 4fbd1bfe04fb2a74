/**
 * Joining against a real control plane (SQLite, gRPC over TLS): single use
 * under a race of 50 joins, distinct codes for used/expired/unknown tokens,
 * no token in any log line, renewal without a token after a restart,
 * revocation, and the file modes of keys.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { connectControlPlane } from '../../agent/identity/cp-client.js';
import { fetchWorkloadSvid, joinMesh, renewNodeSvid } from '../../agent/identity/enroll.js';
import { loadNodeIdentity } from '../../agent/identity/identity-store.js';
import { type Clock, systemClock } from '../../lib/clock.js';
import { run } from '../../lib/exec.js';
import { repoRoot } from '../../scripts/repo-root.js';
import { childEnv, untracked } from '../support/child.js';
import { anonymousClient, freshCsr, freshCsrs, startTestControlPlane } from '../support/controlplane.js';

t.setTimeout(120_000);

t.test('50 parallel joins with one token: exactly one wins', async (t) => {
  const tcp = await startTestControlPlane();
  t.teardown(() => tcp.stop());
  const token = tcp.token('vm-race');
  const clients = Array.from({ length: 50 }, () => anonymousClient(tcp));
  const csrs = await freshCsrs(clients.length);
  const results = await Promise.allSettled(clients.map((c, i) => c.join(token, (csrs[i] as { csr: Buffer }).csr)));
  for (const c of clients) c.close();
  const wins = results.filter((r) => r.status === 'fulfilled');
  const losses = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  t.equal(wins.length, 1, 'exactly one join succeeded');
  t.equal(losses.length, 49);
  t.ok(
    losses.every((r) => r.reason.code === 'MESH_E_TOKEN_USED'),
    'every other join was told the token is used',
  );
  const nodeCerts = tcp.cp.db.prepare("SELECT COUNT(*) AS n FROM certificates WHERE kind = 'node'").get() as { n: number };
  t.equal(nodeCerts.n, 1, 'one node certificate in the store');
  const audit = tcp.cp.db.prepare("SELECT result, COUNT(*) AS n FROM audit WHERE action = 'node.join' GROUP BY result").all();
  t.same(audit, [
    { result: 'MESH_E_TOKEN_USED', n: 49 },
    { result: 'ok', n: 1 },
  ]);
});

t.test('used, expired and unknown tokens fail with their own codes; no token in any log line', async (t) => {
  // The control plane's clock is the system clock, set back a minute while the expired token is made:
  // the token is past its expiry when it is used, with nothing to wait for.
  let skewMs = 0;
  const clock: Clock = { now: () => Date.now() + skewMs, setTimer: (ms, fn) => systemClock.setTimer(ms, fn) };
  const tcp = await startTestControlPlane({ clock });
  t.teardown(() => tcp.stop());
  const client = anonymousClient(tcp);
  t.teardown(() => client.close());
  const good = tcp.token('vm-a');
  skewMs = -60_000;
  const expired = tcp.token('vm-b', [], 1);
  skewMs = 0;
  await client.join(good, (await freshCsr()).csr);
  await t.rejects(client.join(good, (await freshCsr()).csr), { code: 'MESH_E_TOKEN_USED', message: /already used/ });
  await t.rejects(client.join(expired, (await freshCsr()).csr), { code: 'MESH_E_TOKEN_EXPIRED', message: /expired/ });
  await t.rejects(client.join('mjt1_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', (await freshCsr()).csr), {
    code: 'MESH_E_TOKEN_UNKNOWN',
  });
  await t.rejects(client.join('not-a-token', (await freshCsr()).csr), { code: 'MESH_E_TOKEN_UNKNOWN' });

  const everything = tcp.logs.join('\n');
  t.ok(tcp.logs.length > 3, 'the control plane logged');
  for (const token of [good, expired]) {
    t.notOk(everything.includes(token), 'the token is in no log line');
    t.notOk(everything.includes(token.slice(5, 25)), 'not even a part of it');
  }
  const stored =
    JSON.stringify(tcp.cp.db.prepare('SELECT * FROM join_tokens').all()) + JSON.stringify(tcp.cp.db.prepare('SELECT * FROM audit').all());
  t.notOk(stored.includes(good) || stored.includes(expired), 'the database holds only hashes');
});

t.test('join, workload SVID, restart renewal without a token, revocation', async (t) => {
  const tcp = await startTestControlPlane();
  t.teardown(() => tcp.stop());
  const dataDir = t.testdir({});
  const joined = await joinMesh({
    address: tcp.cp.address,
    token: tcp.token('vm1', ['spiffe://example.org/ns/default/sa/*']),
    bundlePem: tcp.bundlePem(),
    dataDir,
  });
  t.equal(joined.spiffeId, 'spiffe://example.org/mesh/node/vm1');

  // Keys on disk: 0600 files in 0700 folders, on the agent and in the CA.
  const identity = path.join(dataDir, 'identity');
  t.equal((await stat(identity)).mode & 0o777, 0o700);
  t.equal((await stat(path.join(identity, 'node.key'))).mode & 0o777, 0o600);
  t.equal((await stat(tcp.dataDir)).mode & 0o777, 0o700);
  t.equal((await stat(path.join(tcp.dataDir, 'ca'))).mode & 0o777, 0o700);
  for (const row of tcp.cp.db.prepare('SELECT signer_key_file, root_key_file FROM ca_generations').all() as Array<Record<string, string>>) {
    for (const file of Object.values(row)) t.equal((await stat(path.join(tcp.dataDir, file))).mode & 0o777, 0o600, `${file} is 0600`);
  }
  t.equal((await stat(tcp.cp.adminSocket)).mode & 0o777, 0o600, 'admin socket is 0600');

  const out = path.join(dataDir, 'web');
  const web = await fetchWorkloadSvid({ dataDir, spiffeId: 'spiffe://example.org/ns/default/sa/web', outDir: out });
  t.equal(web.spiffeId, 'spiffe://example.org/ns/default/sa/web');
  t.equal((await stat(web.files.key)).mode & 0o777, 0o600);

  // "Reboot": a new process with only the files on disk renews the node SVID, no token.
  const before = await loadNodeIdentity(dataDir);
  const main = path.join(repoRoot(), 'dist', 'agent', 'main.js');
  const renewed = await run(...untracked(process.execPath, [main, 'renew', '--data-dir', dataDir, '--json']), {
    timeoutMs: 30_000,
    env: childEnv(),
  });
  t.equal(renewed.code, 0, renewed.stderr);
  const renewal = JSON.parse(renewed.stdout) as { spiffeId: string; serial: string };
  t.equal(renewal.spiffeId, 'spiffe://example.org/mesh/node/vm1');
  t.not(renewal.serial, joined.serial, 'a new node certificate');
  const after = await loadNodeIdentity(dataDir);
  t.not(after.keyPem, before.keyPem, 'renewal rotated the node key');
  const again = await renewNodeSvid({ dataDir });
  t.not(again.serial, renewal.serial, 'the renewed identity renews again');

  // A node may not get an ID it was not allowed.
  await t.rejects(fetchWorkloadSvid({ dataDir, spiffeId: 'spiffe://example.org/ns/prod/sa/db', outDir: out }), {
    code: 'MESH_E_NOT_AUTHORIZED',
  });
  await t.rejects(fetchWorkloadSvid({ dataDir, spiffeId: 'spiffe://other.org/ns/default/sa/web', outDir: out }), {
    code: 'MESH_E_NOT_AUTHORIZED',
  });
  await t.rejects(fetchWorkloadSvid({ dataDir, spiffeId: 'spiffe://example.org/mesh/node/vm2', outDir: out }), {
    code: 'MESH_E_NOT_AUTHORIZED',
  });

  // Revoked: no renewal, no SVIDs.
  tcp.cp.identity.revoke('vm1');
  await t.rejects(renewNodeSvid({ dataDir }), { code: 'MESH_E_NODE_REVOKED' });
  await t.rejects(fetchWorkloadSvid({ dataDir, spiffeId: 'spiffe://example.org/ns/default/sa/web', outDir: out }), {
    code: 'MESH_E_NODE_REVOKED',
  });
  const audit = tcp.cp.db.prepare('SELECT action, result FROM audit ORDER BY id').all() as Array<{ action: string; result: string }>;
  t.match(
    audit.map((a) => `${a.action}:${a.result}`),
    [
      'ca.init:ok',
      'token.create:ok',
      'node.join:ok',
      'svid.sign:ok',
      'node.renew:ok',
      'node.renew:ok',
      'svid.sign:MESH_E_NOT_AUTHORIZED',
      'svid.sign:MESH_E_NOT_AUTHORIZED',
      'svid.sign:MESH_E_NOT_AUTHORIZED',
      'node.revoke:ok',
      'node.renew:MESH_E_NODE_REVOKED',
      'svid.sign:MESH_E_NODE_REVOKED',
    ],
  );
});

t.test('calls without a node certificate, or with a foreign one, are refused', async (t) => {
  const tcp = await startTestControlPlane();
  const other = await startTestControlPlane({ trustDomain: 'example.org' });
  t.teardown(async () => {
    await tcp.stop();
    await other.stop();
  });
  const anon = anonymousClient(tcp);
  t.teardown(() => anon.close());
  const raw = anon as unknown as { renewNode: (csr: Buffer) => Promise<unknown> };
  await t.rejects(raw.renewNode((await freshCsr()).csr), { code: 'MESH_E_NOT_JOINED' });

  // A node of another control plane (same trust domain name, different CA).
  const dataDir = t.testdir({});
  await joinMesh({
    address: other.cp.address,
    token: other.token('intruder', ['spiffe://example.org/ns/default/sa/*']),
    bundlePem: other.bundlePem(),
    dataDir,
  });
  const identity = await loadNodeIdentity(dataDir);
  const foreign = connectControlPlane({
    address: tcp.cp.address,
    trustDomain: 'example.org',
    bundlePem: tcp.bundlePem(),
    node: { chainPem: identity.chainPem, keyPem: identity.keyPem },
  });
  t.teardown(() => foreign.close());
  await t.rejects(foreign.signWorkload('spiffe://example.org/ns/default/sa/web', (await freshCsr()).csr), {
    code: 'MESH_E_UNAUTHENTICATED',
  });

  // An agent that trusts the wrong bundle refuses the server (no trust on first use).
  const wrongBundle = connectControlPlane({ address: tcp.cp.address, trustDomain: 'example.org', bundlePem: other.bundlePem() });
  t.teardown(() => wrongBundle.close());
  await t.rejects(wrongBundle.join(tcp.token('vm9'), (await freshCsr()).csr), { code: 'MESH_E_CONTROLPLANE_UNAVAILABLE' });
});
