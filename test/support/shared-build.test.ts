import { existsSync } from 'node:fs';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { sharedBuild } from './shared-build.js';
import { tempDir } from './temp-dir.js';

t.test('within one run the first caller builds and the others reuse its folder, also when they ask at once', async (t) => {
  const runDir = await tempDir(t, 'mesh-run-');
  const env = { MESH_TEST_RUN_DIR: runDir };
  let builds = 0;
  const build = async (dir: string) => {
    builds++;
    await writeFile(path.join(dir, 'product'), `build ${builds}`);
  };
  const dirs = await Promise.all([sharedBuild(t, 'thing', build, env), sharedBuild(t, 'thing', build, env)]);
  const again = await sharedBuild(t, 'thing', build, env);
  t.equal(builds, 1, 'built once');
  t.same(dirs, [path.join(runDir, 'thing'), path.join(runDir, 'thing')]);
  t.equal(again, dirs[0]);
  t.equal(await readFile(path.join(again, 'product'), 'utf8'), 'build 1');
});

t.test('a failed build is not reused: the next caller builds again from an empty folder', async (t) => {
  const runDir = await tempDir(t, 'mesh-run-');
  const env = { MESH_TEST_RUN_DIR: runDir };
  const failing = async (dir: string) => {
    await writeFile(path.join(dir, 'half'), 'x');
    throw new Error('nfpm failed');
  };
  await t.rejects(sharedBuild(t, 'thing', failing, env), /nfpm failed/);
  const dir = await sharedBuild(t, 'thing', (d) => writeFile(path.join(d, 'product'), 'ok'), env);
  t.same((await readdir(dir)).sort(), ['.built', 'product'], 'the half-made file of the failed build is gone');
});

t.test('without MESH_TEST_RUN_DIR the build goes into a folder of the test, removed when it ends', async (t) => {
  let dir = '';
  await t.test('a test', async (t) => {
    dir = await sharedBuild(t, 'thing', (d) => writeFile(path.join(d, 'product'), 'ok'), {});
    t.ok(existsSync(path.join(dir, 'product')));
  });
  t.notOk(existsSync(dir), 'removed with its test');
});
