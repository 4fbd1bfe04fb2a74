/**
 * The lock that keeps two provisioning runs (two `npm test`, a test and a
 * benchmark, two clones on one machine) from building into the same cache at
 * once: a file `<cacheDir>/.provision.lock` created exclusively, holding the
 * owner's pid and its start time (field 22 of /proc/<pid>/stat, so a reused pid
 * is not taken for the owner). A run that finds the lock waits while its owner
 * lives, however long a Consul build takes; a lock whose owner is gone (killed,
 * crashed) is broken at once instead of after a timeout.
 *
 * The lock appears with its content (a written file linked into place).
 * Breaking is a rename to a name of our own, so of two waiters that both saw
 * the dead owner only one takes the file; if what it took turns out to be a
 * live owner's new lock (the other waiter was faster), it is linked back.
 * Until every clone runs this code, a lock may still be the folder an older
 * provisioner made (mkdir): it is waited for, and abandoned after an hour as
 * that code did.
 */
import { readFileSync } from 'node:fs';
import { link, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';

export const LOCK_NAME = '.provision.lock';

export interface LockOwner {
  pid: number;
  /** Start time of the process in clock ticks since boot; undefined where /proc is missing. */
  startTime?: string;
}

/** The start time of a process (field 22 of /proc/<pid>/stat), or undefined. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may hold spaces: count from its end.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** True while the owner runs: its pid exists, with the same start time when one was recorded. */
export function ownerAlive(owner: LockOwner): boolean {
  try {
    process.kill(owner.pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  return owner.startTime === undefined || processStartTime(owner.pid) === owner.startTime;
}

export function parseOwner(text: string): LockOwner | undefined {
  try {
    const value = JSON.parse(text) as Partial<LockOwner>;
    if (typeof value.pid !== 'number' || !Number.isInteger(value.pid) || value.pid <= 0) return undefined;
    return typeof value.startTime === 'string' ? { pid: value.pid, startTime: value.startTime } : { pid: value.pid };
  } catch {
    return undefined;
  }
}

/** An older provisioner's lock was a folder of this name; like it did, one older than this is abandoned. */
const FOLDER_LOCK_MAX_AGE_MS = 60 * 60_000;

/** Breaks the lock if its owner is gone; 'retry' when it is (or the lock went meanwhile), 'held' while the owner runs. */
async function breakIfStale(lock: string): Promise<'retry' | 'held'> {
  const info = await stat(lock).catch(() => undefined);
  if (info === undefined) return 'retry';
  if (info.isDirectory()) {
    if (Date.now() - info.mtimeMs < FOLDER_LOCK_MAX_AGE_MS) return 'held';
    await rm(lock, { recursive: true, force: true });
    return 'retry';
  }
  const owner = parseOwner(await readFile(lock, 'utf8').catch(() => ''));
  if (owner !== undefined && ownerAlive(owner)) return 'held';
  const taken = `${lock}.stale-${process.pid}`;
  try {
    await rename(lock, taken);
  } catch {
    return 'retry'; // another waiter took it first
  }
  const took = parseOwner(await readFile(taken, 'utf8').catch(() => ''));
  if (took !== undefined && ownerAlive(took)) await link(taken, lock).catch(() => undefined);
  await rm(taken, { force: true });
  return 'retry';
}

/** Creates the lock with its content in one step (a link of a written file): nobody sees it empty. */
async function tryCreate(lock: string, owner: LockOwner): Promise<boolean> {
  const mine = `${lock}.new-${process.pid}`;
  await writeFile(mine, JSON.stringify(owner));
  try {
    await link(mine, lock);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return false;
  } finally {
    await rm(mine, { force: true });
  }
}

/**
 * Runs fn holding the lock in cacheDir; `wait` is the pause between two looks at a
 * held lock (the poll of another process's lifetime; tests pass a short one).
 */
export async function withProvisionLock<T>(
  cacheDir: string,
  fn: () => Promise<T>,
  options: { progress?: (line: string) => void; pollMs?: number } = {},
): Promise<T> {
  const lock = path.join(cacheDir, LOCK_NAME);
  const me: LockOwner = { pid: process.pid, startTime: processStartTime(process.pid) };
  let announced = false;
  for (;;) {
    if (await tryCreate(lock, me)) break;
    if ((await breakIfStale(lock)) === 'retry') continue;
    if (!announced) options.progress?.(`waiting for another provisioning run (lock ${lock})`);
    announced = true;
    await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 500));
  }
  try {
    return await fn();
  } finally {
    const text = await readFile(lock, 'utf8').catch(() => '');
    if (parseOwner(text)?.pid === process.pid) await rm(lock, { force: true });
  }
}
