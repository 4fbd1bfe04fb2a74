/**
 * kill -9 of the control plane in the middle of 200 concurrent issuances,
 * 20 times over one data folder: the database passes its integrity check,
 * no serial repeats, every certificate a client received is in the store,
 * and the CA keys load and match their certificates.
 */
import { X509Certificate } from 'node:crypto';
import path from 'node:path';
import t from 'tap';
import { connectControlPlane } from '../../agent/identity/cp-client.js';
import { loadNodeIdentity } from '../../agent/identity/identity-store.js';
import { openDb } from '../../controlplane/store/db.js';
import { readPrivateKey } from '../../lib/secret-files.js';
import { adminJoinSource, freshCsrs, joinNode, spawnControlPlane } from '../support/controlplane.js';
import { tempDir } from '../support/temp-dir.js';

t.setTimeout(300_000);

const ROUNDS = 20;
const CONCURRENT = 200;
const ID = 'spiffe://example.org/ns/default/sa/web';

t.test(`kill -9 during ${CONCURRENT} concurrent issuances, ${ROUNDS} times`, async (t) => {
  // A short folder: the admin socket path must fit a Unix socket address.
  const base = await tempDir(t, 'mesh-crash-');
  const dataDir = path.join(base, 'cp');
  const agentDir = path.join(base, 'agent');
  let live: { child: { stop(): Promise<void> } } | undefined;
  t.teardown(() => live?.child.stop());

  // First start: create the CA, join one node.
  let cp = await spawnControlPlane(dataDir);
  live = cp;
  await joinNode(adminJoinSource(cp), 'vm1', [ID], agentDir);
  const identity = await loadNodeIdentity(agentDir);
  await cp.child.stop();

  const received: Array<{ serial: string; der: Buffer }> = [];
  const perRound: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    cp = await spawnControlPlane(dataDir);
    live = cp;
    const client = connectControlPlane({
      address: cp.address,
      trustDomain: 'example.org',
      bundlePem: identity.bundlePem,
      node: { chainPem: identity.chainPem, keyPem: identity.keyPem },
      deadlineMs: 10_000,
    });
    const csrs = (await freshCsrs(CONCURRENT)).map((c) => c.csr);
    await client.getBundle(); // connection up before the burst
    const before = received.length;
    const calls = csrs.map((csr) =>
      client.signWorkload(ID, csr).then((svid) => {
        const der = new X509Certificate(svid.chainPem).raw;
        received.push({ serial: svid.serial, der });
        return svid;
      }),
    );
    // Kill at a random point of the burst: once a random number of answers is back.
    const target = 1 + Math.floor(Math.random() * (CONCURRENT - 1));
    const settled = Promise.allSettled(calls);
    let done = false;
    void settled.then(() => (done = true));
    while (!done && received.length - before < target) await new Promise((resolve) => setImmediate(resolve));
    process.kill(cp.child.pid, 'SIGKILL');
    const outcomes = await Promise.allSettled(calls);
    perRound.push(outcomes.filter((o) => o.status === 'fulfilled').length);
    client.close();
    await cp.child.stop();
  }
  t.comment(`certificates received per round before the kill: ${perRound.join(' ')}`);
  t.ok(
    perRound.some((n) => n > 0 && n < CONCURRENT),
    'at least one kill landed in the middle of a burst',
  );

  const db = openDb(path.join(dataDir, 'controlplane.db'));
  t.teardown(() => db.close());
  t.same(db.pragma('integrity_check'), [{ integrity_check: 'ok' }], 'integrity check passes');
  const duplicates = db
    .prepare('SELECT generation_id, serial, COUNT(*) AS n FROM certificates GROUP BY generation_id, serial HAVING n > 1')
    .all();
  t.same(duplicates, [], 'no duplicate serials');
  const find = db.prepare('SELECT spiffe_id FROM certificates WHERE serial = ?');
  const missing = received.filter((r) => find.get(r.serial) === undefined);
  t.equal(missing.length, 0, `every one of the ${received.length} certificates a client received is in the store`);
  t.equal(new Set(received.map((r) => r.serial)).size, received.length, 'clients never received the same serial twice');

  for (const row of db.prepare('SELECT signer_pem, signer_key_file FROM ca_generations').all() as Array<{
    signer_pem: string;
    signer_key_file: string;
  }>) {
    const key = await readPrivateKey(path.join(dataDir, row.signer_key_file));
    t.ok(new X509Certificate(row.signer_pem).checkPrivateKey(key), 'the CA key loads and matches its certificate');
  }
});
