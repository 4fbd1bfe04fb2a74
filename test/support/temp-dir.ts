/**
 * A temporary folder that the test removes when it ends. Teardowns run
 * last-registered first, so call this before starting anything that writes
 * into the folder (a server on a socket in it, an agent with its data there):
 * that stops first, then the folder goes. Keep the prefix short where the
 * folder holds a Unix socket (a socket path must fit in 107 bytes).
 * withTempDir is the same for the length of one call, outside a test's life.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Test } from 'tap';

export async function tempDir(t: Pick<Test, 'teardown'>, prefix = 'mesh-'): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Runs fn with a new temporary folder and removes the folder when fn is done (also when it throws). */
export async function withTempDir<T>(prefix: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
