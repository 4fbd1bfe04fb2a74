/**
 * The composed identities on a fake clock and a fake control plane: a restart
 * serves the stored workload SVIDs at once, before any control-plane call,
 * even with the control plane down; they are renewed at once when it is back;
 * invalid stored files are ignored with a warning and replaced; the bundle
 * watch, node renewal and workload SVIDs share one connection.
 */
import { X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t, { type Test } from 'tap';
import { workloadDirName } from '../../../agent/identity/svid-check.js';
import { createWorkloadIdentities } from '../../../agent/identity/workload-identities.js';
import { KEY_FILE, workloadsDir } from '../../../agent/identity/workload-svid-store.js';
import { createLogger } from '../../../lib/logger.js';
import { FakeClock } from '../../fakes/clock.js';
import { FAKE_NODE_ID, FakeControlPlane } from '../../fakes/control-plane-client.js';
import { flush } from '../../support/flush.js';
import { tempDir } from '../../support/temp-dir.js';
import { MIN, until } from './rotation-fixtures.js';

const WEB = 'spiffe://example.org/ns/default/sa/web';
const API = 'spiffe://example.org/ns/default/sa/api';

function identitiesOn(t: Test, dataDir: string, clock: FakeClock, fake: FakeControlPlane) {
  const lines: string[] = [];
  const ids = createWorkloadIdentities({
    dataDir,
    clock,
    log: createLogger({ level: 'debug', sink: { write: (line) => lines.push(line) }, clock }),
    connect: fake.connect,
    rotation: { backoff: { initialMs: 1_000, maxMs: 4_000 }, random: () => 0.5 },
  });
  t.teardown(() => ids.stop());
  let changes = 0;
  ids.onChange(() => changes++);
  const stateOf = (id: string) => ids.states().workloads.find((w) => w.spiffeId === id);
  return { ids, lines, changes: () => changes, stateOf };
}

const storedKey = (dataDir: string, id: string) =>
  readFile(path.join(workloadsDir(dataDir), workloadDirName(id), KEY_FILE), 'utf8').catch(() => undefined);

/** Joined, two SVIDs obtained and stored, stopped. */
async function firstRun(t: Test) {
  const dataDir = await tempDir(t);
  const clock = new FakeClock(Date.now());
  const fake = new FakeControlPlane(clock);
  await fake.joinNode(dataDir);
  const first = identitiesOn(t, dataDir, clock, fake);
  await first.ids.start();
  first.ids.setWanted([WEB, API]);
  await until(() => first.ids.current().certs.size === 2, 'two SVIDs');
  t.match(first.stateOf(WEB), { source: 'control-plane' });
  const held = first.ids.current().certs;
  for (const id of [WEB, API]) await until(async () => (await storedKey(dataDir, id)) === held.get(id)?.keyPem, `${id} on disk`);
  await first.ids.stop();
  return { dataDir, clock, fake, held };
}

t.test('a restart with the control plane down serves the stored SVIDs at once, then renews them when it is back', async (t) => {
  const { dataDir, clock, fake, held } = await firstRun(t);
  fake.down = true;
  const callsBefore = fake.calls.length;
  clock.advance(45 * MIN);
  const { ids, lines, changes, stateOf } = identitiesOn(t, dataDir, clock, fake);
  ids.setWanted([WEB]);
  await ids.start();
  t.same(ids.current().certs.get(WEB), held.get(WEB), 'WEB is served from disk as soon as start() returns');
  t.notOk(ids.current().certs.has(API), 'API is not wanted: not served');
  t.ok(changes() >= 1, 'onChange fired');
  t.equal(fake.calls.length, callsBefore, 'no control-plane call was needed');
  t.match(stateOf(WEB), { state: 'ready', source: 'disk' });
  t.match(ids.states().node, { spiffeId: FAKE_NODE_ID, source: 'disk' });
  t.ok(ids.current().bundlePem.includes('BEGIN CERTIFICATE'), 'the stored bundle is served with it');

  // Past its renewal time: renewed at once, which fails while the control plane is down.
  clock.advance(0);
  await until(() => (stateOf(WEB)?.failures ?? 0) >= 1 && ids.states().controlPlane.state === 'failing', 'failures');
  t.match(stateOf(WEB), { state: 'failing', source: 'disk' });
  t.ok(ids.current().certs.has(WEB), 'still served');

  // Back: the watch reopens (backoff at most 4 s) and the failed renewal is retried at once.
  fake.down = false;
  clock.advance(4_000);
  await until(() => stateOf(WEB)?.source === 'control-plane', 'the renewal from the control plane');
  // The node SVID, also past its renewal time, is renewed too; the client then reconnects with it.
  await until(() => ids.states().controlPlane.state === 'connected' && ids.states().node.source === 'control-plane', 'connected');
  t.match(stateOf(WEB), { state: 'ready', failures: 0 });
  t.not(ids.current().certs.get(WEB)?.chainPem, held.get(WEB)?.chainPem, 'a new certificate');
  t.ok(
    lines.some((l) => l.includes('workload SVID loaded from disk')),
    'the log says where it came from',
  );
  t.notMatch(lines.join('\n'), /PRIVATE KEY|BEGIN CERTIFICATE/, 'no PEM in the logs');
  await ids.stop();
});

t.test('invalid stored files are ignored with a warning and replaced by the next fetch', async (t) => {
  const { dataDir, clock, fake, held } = await firstRun(t);
  // A damaged key for WEB.
  await writeFile(path.join(workloadsDir(dataDir), workloadDirName(WEB), KEY_FILE), 'garbage');
  const { ids, lines, stateOf } = identitiesOn(t, dataDir, clock, fake);
  await ids.start();
  ids.setWanted([WEB, API]);
  t.same(ids.current().certs.get(API), held.get(API), 'API from disk');
  t.notOk(ids.current().certs.has(WEB), 'WEB is not served from its damaged files');
  const warning = lines.find((l) => l.includes('stored workload SVID ignored'));
  t.match(warning, /example\.org\+ns\+default\+sa\+web/);
  t.match(warning, /the key file holds no readable private key/);
  await until(() => stateOf(WEB)?.source === 'control-plane', 'a new WEB SVID');
  const fresh = ids.current().certs.get(WEB);
  await until(async () => (await storedKey(dataDir, WEB)) === fresh?.keyPem, 'the damaged files replaced');
  t.not(fresh?.keyPem, held.get(WEB)?.keyPem);
  await ids.stop();
});

t.test('expired stored SVIDs are not served', async (t) => {
  const { dataDir, clock, fake } = await firstRun(t);
  clock.advance(2 * 60 * MIN);
  fake.down = true;
  const { ids, lines } = identitiesOn(t, dataDir, clock, fake);
  await ids.start();
  ids.setWanted([WEB, API]);
  await flush();
  t.equal(ids.current().certs.size, 0);
  t.equal(lines.filter((l) => l.includes('stored workload SVID ignored') && l.includes('expired at')).length, 2);
  await ids.stop();
});

t.test('node renewal and bundle changes reconnect the one client; workload calls follow it', async (t) => {
  const dataDir = await tempDir(t);
  const clock = new FakeClock(Date.now());
  const fake = new FakeControlPlane(clock);
  await fake.joinNode(dataDir);
  const { ids } = identitiesOn(t, dataDir, clock, fake);
  await ids.start();
  await flush();
  t.equal(ids.states().controlPlane.state, 'connected');
  const node = ids.states().node;
  clock.advance((node.nextRenewalAt ?? 0) - clock.now());
  await until(() => ids.states().node.source === 'control-plane', 'the node renewal');
  const client = fake.lastClient();
  t.not(client?.options.node?.chainPem, fake.clients[0]?.options.node?.chainPem, 'reconnected with the new node SVID');
  t.not(new X509Certificate(client?.options.node?.chainPem ?? '').serialNumber, node.serial);
  ids.setWanted([WEB]);
  await until(() => ids.current().certs.has(WEB), 'an SVID on the new client');
  t.equal(fake.clients.filter((c) => !c.closed).length, 1, 'one client open');
  await ids.stop();
});
