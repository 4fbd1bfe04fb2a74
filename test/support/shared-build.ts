/**
 * Something expensive built once per `npm test` run and shared by the test
 * files that need it (the packages: a build of all four takes minutes on two
 * shared cores). run-tests.ts makes a fresh folder per run, passes it in
 * MESH_TEST_RUN_DIR and removes it at the end, so nothing outlives the run and
 * nothing stale is reused. The first file to ask builds `<run dir>/<key>` holding
 * a lock; one asking meanwhile waits for it, then reuses it. A failed build
 * leaves nothing marked done, so the next file to ask builds again. Without
 * MESH_TEST_RUN_DIR (one file run by hand with tap) the build goes into a
 * folder of the test's own, removed when the test ends.
 */
import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Test } from 'tap';
import { withProvisionLock } from '../../scripts/provision-lock.js';
import { tempDir } from './temp-dir.js';

const DONE = '.built';

export async function sharedBuild(
  t: Pick<Test, 'teardown' | 'comment'>,
  key: string,
  build: (dir: string) => Promise<void>,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string> {
  const runDir = env.MESH_TEST_RUN_DIR;
  if (runDir === undefined || runDir === '') {
    const dir = await tempDir(t, `mesh-${key}-`);
    await build(dir);
    return dir;
  }
  const dir = path.join(runDir, key);
  const lockDir = path.join(runDir, `${key}.lock`);
  await mkdir(lockDir, { recursive: true });
  await withProvisionLock(
    lockDir,
    async () => {
      if (existsSync(path.join(dir, DONE))) {
        t.comment(`${key}: reusing the build of this run in ${dir}`);
        return;
      }
      await rm(dir, { recursive: true, force: true });
      await mkdir(dir, { recursive: true });
      await build(dir);
      await writeFile(path.join(dir, DONE), '');
    },
    { progress: (line) => t.comment(`${key}: ${line}`) },
  );
  return dir;
}
