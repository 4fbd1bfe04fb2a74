/**
 * Workload SVIDs on a fake clock against a fake control plane, with the real
 * store in a temp folder: first fetches retried with backoff, SVIDs saved
 * when obtained or renewed, stored SVIDs served at once at start (source
 * 'disk') and renewed at once or at the usual time, dropped IDs forgotten
 * with their files, late answers thrown away, and stop leaving files alone.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import t, { type Test } from 'tap';
import { createControlPlaneConnection } from '../../../agent/identity/cp-connection.js';
import { requestWorkloadSvid } from '../../../agent/identity/enroll.js';
import { workloadDirName } from '../../../agent/identity/svid-check.js';
import { createWorkloadSvidStore, KEY_FILE, workloadsDir } from '../../../agent/identity/workload-svid-store.js';
import { createWorkloadSvids } from '../../../agent/identity/workload-svids.js';
import { createWriteQueue } from '../../../agent/identity/write-queue.js';
import { createLogger } from '../../../lib/logger.js';
import { FakeClock } from '../../fakes/clock.js';
import { FakeControlPlane } from '../../fakes/control-plane-client.js';
import { flush } from '../../support/flush.js';
import { tempDir } from '../../support/temp-dir.js';
import { MIN, SEC, until } from './rotation-fixtures.js';

const WEB = 'spiffe://example.org/ns/default/sa/web';
const API = 'spiffe://example.org/ns/default/sa/api';
const DB = 'spiffe://example.org/ns/default/sa/db';
const BACKOFF = { initialMs: 1_000, maxMs: 60_000 };

async function setup(t: Test, reuse?: { dataDir: string; clock: FakeClock; fake: FakeControlPlane }) {
  const dataDir = reuse?.dataDir ?? (await tempDir(t));
  const clock = reuse?.clock ?? new FakeClock(Date.now());
  const fake = reuse?.fake ?? new FakeControlPlane(clock);
  const lines: string[] = [];
  const log = createLogger({ level: 'debug', sink: { write: (line) => lines.push(line) }, clock });
  const connection = createControlPlaneConnection({ address: 'cp:1', trustDomain: 'example.org', connect: fake.connect });
  connection.replace({ node: { chainPem: 'node', keyPem: 'node key' }, bundlePem: fake.rootsPem });
  const queue = createWriteQueue(log);
  const store = createWorkloadSvidStore(dataDir);
  let changes = 0;
  const svids = createWorkloadSvids({
    clock,
    log,
    rotation: { clock, log, random: () => 0.5, backoff: BACKOFF },
    backoff: BACKOFF,
    random: () => 1,
    obtain: (id) => connection.call((client) => requestWorkloadSvid(client, id)),
    store,
    persist: queue.persist,
    onChange: () => changes++,
  });
  t.teardown(async () => {
    svids.stop();
    await queue.idle();
  });
  const stateOf = (id: string) => svids.states().find((s) => s.spiffeId === id);
  const serialOf = (id: string) => {
    const pem = svids.current().get(id)?.chainPem;
    return pem === undefined ? undefined : new X509Certificate(pem).serialNumber;
  };
  /** The stored key and chain of an ID, once every queued write has run. */
  const onDisk = async (id: string) => {
    await queue.idle();
    const dir = path.join(workloadsDir(dataDir), workloadDirName(id));
    if (!existsSync(dir)) return undefined;
    return { keyPem: await readFile(path.join(dir, KEY_FILE), 'utf8'), chainPem: await readFile(path.join(dir, 'svid.pem'), 'utf8') };
  };
  return { dataDir, clock, fake, store, queue, svids, lines, changes: () => changes, stateOf, serialOf, onDisk };
}

t.test('a first fetch is retried with backoff; the SVID obtained is saved; renewals too, with a new key', async (t) => {
  const { clock, fake, svids, lines, changes, stateOf, serialOf, onDisk } = await setup(t);
  svids.setWanted([WEB]);
  t.equal(fake.calls.length, 0, 'nothing fetched before enable()');
  t.match(stateOf(WEB), { state: 'pending', failures: 0 });
  fake.down = true;
  svids.enable();
  await until(() => stateOf(WEB)?.failures === 1, 'the failed first fetch');
  t.match(stateOf(WEB), {
    state: 'failing',
    failures: 1,
    lastError: /^MESH_E_CONTROLPLANE_UNAVAILABLE/,
    nextRenewalAt: clock.now() + 1_000,
  });
  t.equal(stateOf(WEB)?.source, undefined, 'no source while nothing is held');
  clock.advance(1_000);
  await until(() => stateOf(WEB)?.failures === 2, 'the failed retry');
  t.match(stateOf(WEB), { failures: 2, nextRenewalAt: clock.now() + 2_000 }, 'retried after 1 s, then 2 s');
  fake.down = false;
  clock.advance(2_000);
  await until(() => svids.current().has(WEB), 'the SVID');
  t.equal(fake.calls.length, 3);
  t.match(stateOf(WEB), { state: 'ready', failures: 0, source: 'control-plane' });
  t.equal(changes(), 1);

  const held = svids.current().get(WEB);
  t.same(await onDisk(WEB), held, 'saved to disk as served');
  const leaf = new X509Certificate(held?.chainPem ?? '');
  t.ok(leaf.checkPrivateKey(createPrivateKey(held?.keyPem ?? '')));

  // Renewal at its usual time (about half of the hour), with a new key, saved too.
  const first = serialOf(WEB);
  const renewAt = stateOf(WEB)?.nextRenewalAt ?? 0;
  t.ok(renewAt - clock.now() > 20 * MIN && renewAt - clock.now() < 40 * MIN);
  clock.advance(renewAt - clock.now());
  await until(() => serialOf(WEB) !== first, 'the renewal');
  const renewed = svids.current().get(WEB);
  t.not(renewed?.keyPem, held?.keyPem, 'a new key');
  t.equal(changes(), 2, 'onChange fired for the renewal');
  t.same(await onDisk(WEB), renewed, 'the renewal is saved');
  t.notMatch(lines.join('\n'), /PRIVATE KEY|BEGIN CERTIFICATE/, 'no PEM in the logs');
});

t.test('a refused ID fails alone; an invalid ID is not asked for', async (t) => {
  const { clock, fake, svids, stateOf } = await setup(t);
  fake.refused.add(DB);
  svids.enable();
  svids.setWanted([WEB, DB, 'spiffe://Bad/x']);
  await until(() => svids.current().has(WEB) && stateOf(DB)?.state === 'failing', 'WEB held, DB refused');
  t.match(stateOf(DB), { lastError: /^MESH_E_NOT_AUTHORIZED/ });
  t.match(stateOf('spiffe://Bad/x'), { state: 'failing', failures: 0, lastError: /^MESH_E_SPIFFE_ID_INVALID/ });
  clock.advance(10 * SEC);
  await until(() => (stateOf(DB)?.failures ?? 0) >= 2, 'the refused ID retried');
  t.ok((stateOf(DB)?.failures ?? 0) >= 2, 'the refused ID is retried');
  t.notOk(
    fake.calls.some((c) => c.spiffeId === 'spiffe://Bad/x'),
    'the invalid ID never was asked for',
  );
  t.same([...svids.current().keys()], [WEB]);
});

t.test('a dropped ID is forgotten with its files; a late answer for it is thrown away', async (t) => {
  const { fake, svids, changes, onDisk } = await setup(t);
  svids.enable();
  svids.setWanted([WEB, API]);
  await until(() => svids.current().size === 2, 'two SVIDs');
  t.ok(await onDisk(API), 'API stored');
  fake.hold = true;
  svids.setWanted([WEB, API, DB]);
  await until(() => fake.heldCalls() === 1, 'the fetch of DB');
  t.equal(fake.heldCalls(), 1, 'DB is being fetched');
  const before = changes();
  svids.setWanted([WEB]);
  t.same([...svids.current().keys()], [WEB], 'API and DB are gone at once');
  t.same(
    svids.states().map((s) => s.spiffeId),
    [WEB],
  );
  t.equal(changes(), before + 1, 'onChange fired for the dropped SVID');
  fake.release();
  await flush();
  t.same([...svids.current().keys()], [WEB], 'the late answer for DB was thrown away');
  t.equal(await onDisk(API), undefined, 'the files of API are removed');
  t.equal(await onDisk(DB), undefined, 'nothing was saved for DB');
  t.ok(await onDisk(WEB));
});

t.test('stored SVIDs: the wanted ones are served at once from disk, renewed at the usual time; the others removed', async (t) => {
  const first = await setup(t);
  first.svids.enable();
  first.svids.setWanted([WEB, API]);
  await until(() => first.svids.current().size === 2, 'two SVIDs');
  const web = first.svids.current().get(WEB);
  const webState = first.stateOf(WEB);
  await first.onDisk(WEB);
  first.svids.stop();
  t.ok(await first.onDisk(API), 'stop leaves the files');

  // "Restart" on the same folder, the control plane down.
  const { clock, fake, store, svids, changes, stateOf, serialOf, onDisk } = await setup(t, first);
  fake.down = true;
  clock.advance(10 * MIN);
  const { svids: stored, rejected } = await store.load(fake.rootsPem, clock.now());
  t.same(rejected, []);
  svids.adopt(stored);
  t.equal(svids.current().size, 0, 'nothing served before the wanted IDs are known');
  svids.setWanted([WEB]);
  t.same(svids.current().get(WEB), web, 'served at once: the same certificate and key');
  t.match(stateOf(WEB), { state: 'ready', source: 'disk', serial: webState?.serial, notAfter: webState?.notAfter });
  t.equal(changes(), 1, 'onChange fired');
  const callsBefore = fake.calls.length;
  t.equal(await onDisk(API), undefined, 'the stored SVID of API, no longer wanted, is removed and not served');
  t.notOk(svids.current().has(API));

  // Renewed at its usual time, not before, although the control plane is back.
  svids.enable();
  fake.down = false;
  const renewAt = stateOf(WEB)?.nextRenewalAt ?? 0;
  t.ok(renewAt > clock.now(), 'its renewal time is still ahead');
  clock.advance(renewAt - clock.now() - 1);
  await flush();
  t.equal(fake.calls.length, callsBefore, 'no call before the renewal time');
  clock.advance(1);
  await until(() => stateOf(WEB)?.source === 'control-plane', 'the renewal');
  t.not(serialOf(WEB), webState?.serial);
  t.same(await onDisk(WEB), svids.current().get(WEB), 'the renewal replaced the stored files');
});

t.test('a stored SVID past its renewal time is renewed at once; with the control plane down, at once when it is back', async (t) => {
  const first = await setup(t);
  first.svids.enable();
  first.svids.setWanted([WEB]);
  await until(() => first.svids.current().has(WEB), 'the SVID');
  await first.onDisk(WEB);
  first.svids.stop();

  const { clock, fake, store, svids, stateOf, lines } = await setup(t, first);
  clock.advance(45 * MIN);
  // Wanted before the stored SVIDs are known: served by adopt() itself.
  svids.setWanted([WEB]);
  const { svids: stored } = await store.load(fake.rootsPem, clock.now());
  fake.down = true;
  svids.adopt(stored);
  t.match(stateOf(WEB), { state: 'ready', source: 'disk' });
  t.ok((stateOf(WEB)?.nextRenewalAt ?? Infinity) <= clock.now(), 'past its renewal time');
  svids.enable();
  clock.advance(0);
  await until(() => (stateOf(WEB)?.failures ?? 0) === 1, 'the failed renewal');
  t.match(stateOf(WEB), { state: 'failing', source: 'disk', lastError: /UNAVAILABLE/ });
  t.ok(svids.current().has(WEB), 'still served while renewals fail');

  fake.down = false;
  const calls = fake.calls.length;
  svids.retryFailed();
  await until(() => stateOf(WEB)?.source === 'control-plane', 'the renewal');
  t.equal(fake.calls.length, calls + 1, 'renewed at once, not after its backoff');
  t.match(stateOf(WEB), { state: 'ready', failures: 0 });
  t.ok(lines.some((l) => l.includes('workload SVID loaded from disk')));
});

t.test('retryFailed fetches at once an ID whose first fetch failed', async (t) => {
  const { fake, svids, stateOf } = await setup(t);
  fake.down = true;
  svids.enable();
  svids.setWanted([WEB]);
  await until(() => stateOf(WEB)?.failures === 1, 'the failed first fetch');
  t.equal(stateOf(WEB)?.failures, 1);
  fake.down = false;
  svids.retryFailed();
  await until(() => svids.current().has(WEB), 'the SVID');
  t.equal(fake.calls.length, 2);
});

t.test('stop cancels every timer and removes no file', async (t) => {
  const { dataDir, clock, fake, svids, queue } = await setup(t);
  fake.refused.add(DB);
  svids.enable();
  svids.setWanted([WEB, DB]);
  await until(() => svids.current().has(WEB) && svids.states().every((s) => s.state !== 'pending'), 'WEB held, DB failing');
  svids.stop();
  await queue.idle();
  t.equal(clock.pending(), 0, 'no timer left');
  t.same(await readdir(workloadsDir(dataDir)), [workloadDirName(WEB)]);
  svids.setWanted([]);
  await queue.idle();
  t.same(await readdir(workloadsDir(dataDir)), [workloadDirName(WEB)], 'setWanted after stop changes nothing');
});
