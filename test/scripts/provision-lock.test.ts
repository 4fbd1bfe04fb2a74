/**
 * The provisioning lock (scripts/provision-lock.ts): held by a pid and its start
 * time; a lock whose owner is gone is broken at once; an older provisioner's
 * folder lock is respected. Waiting is observed through the progress line and
 * the promise, never timed.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { LOCK_NAME, ownerAlive, parseOwner, processStartTime, withProvisionLock } from '../../scripts/provision-lock.js';
import { waitFor } from '../support/wait.js';

/** A process that has exited: its pid names nobody (or somebody else, with another start time). */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  await new Promise((resolve) => child.once('exit', resolve));
  return child.pid as number;
}

t.test('the owner: a pid and its start time', async (t) => {
  const me = { pid: process.pid, startTime: processStartTime(process.pid) };
  t.match(me.startTime, /^\d+$/);
  t.ok(ownerAlive(me));
  t.notOk(ownerAlive({ pid: process.pid, startTime: '1' }), 'a reused pid (another start time) is not the owner');
  t.notOk(ownerAlive({ pid: await deadPid() }));
  t.same(parseOwner('{"pid":12,"startTime":"34"}'), { pid: 12, startTime: '34' });
  for (const bad of ['', 'x', '{}', '{"pid":-1}', '{"pid":1.5}']) t.equal(parseOwner(bad), undefined, `not an owner: ${bad}`);
});

t.test('the lock holds our pid while fn runs and is gone afterwards, also when fn throws', async (t) => {
  const dir = t.testdir({});
  const lock = path.join(dir, LOCK_NAME);
  const inside = await withProvisionLock(dir, async () => parseOwner(readFileSync(lock, 'utf8')));
  t.equal(inside?.pid, process.pid);
  t.notOk(existsSync(lock));
  await t.rejects(
    withProvisionLock(dir, async () => {
      throw new Error('boom');
    }),
    /boom/,
  );
  t.notOk(existsSync(lock));
  t.same(readdirSync(dir), [], 'no temporary file of the lock is left');
});

t.test("a dead owner's lock is broken at once, without waiting", async (t) => {
  const dir = t.testdir({});
  writeFileSync(path.join(dir, LOCK_NAME), JSON.stringify({ pid: await deadPid() }));
  const progress: string[] = [];
  t.equal(await withProvisionLock(dir, async () => 'ran', { progress: (l) => progress.push(l) }), 'ran');
  t.same(progress, [], 'no wait was announced');
  writeFileSync(path.join(dir, LOCK_NAME), 'garbage');
  t.equal(await withProvisionLock(dir, async () => 'ran again'), 'ran again', 'a lock naming nobody is broken too');
});

t.test("an older provisioner's folder lock is waited for; one over an hour old is abandoned", async (t) => {
  const dir = t.testdir({});
  const lock = path.join(dir, LOCK_NAME);
  mkdirSync(lock);
  const progress: string[] = [];
  let ran = false;
  const run = withProvisionLock(
    dir,
    async () => {
      ran = true;
    },
    { progress: (l) => progress.push(l), pollMs: 10 },
  );
  await waitFor(async () => (progress.length > 0 ? true : undefined), { what: 'the wait to be announced' });
  t.notOk(ran, 'it waits');
  const old = new Date(Date.now() - 2 * 60 * 60_000);
  utimesSync(lock, old, old);
  await run;
  t.ok(ran, 'the abandoned folder lock was removed');
  t.notOk(existsSync(lock));
});
