/**
 * Provisioning fails clearly when its tools are missing, and waits for another
 * live run's lock instead of building twice. Each tap test file is its own process,
 * so changing PATH here affects nothing else.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { provision } from '../../scripts/provision.js';
import { LOCK_NAME, processStartTime } from '../../scripts/provision-lock.js';
import { repoRoot } from '../../scripts/repo-root.js';
import { waitFor } from '../support/wait.js';

t.test('a missing python3 is named, with what to install', async (t) => {
  const cacheDir = t.testdir({});
  const saved = process.env.PATH;
  process.env.PATH = '/nonexistent';
  t.teardown(() => {
    process.env.PATH = saved;
  });
  await t.rejects(provision({ root: repoRoot(), cacheDir }), {
    code: 'MESH_E_PROVISION_TOOL_MISSING',
    message: /python3 is not installed/,
    details: { tool: 'python3' },
  });
});

t.test('a second run waits for the lock of a live first run, and goes on when that run is gone', async (t) => {
  const cacheDir = t.testdir({});
  // The first run: a process that lives until its stdin closes, named in the lock.
  const first = spawn(process.execPath, ['-e', "process.stdin.resume(); process.stdin.on('end', () => process.exit(0))"], {
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  t.teardown(() => first.kill());
  const pid = first.pid as number;
  await waitFor(async () => (processStartTime(pid) !== undefined ? true : undefined), { what: 'the first run to start' });
  writeFileSync(path.join(cacheDir, LOCK_NAME), JSON.stringify({ pid, startTime: processStartTime(pid) }));
  mkdirSync(path.join(cacheDir, 'consul-1.0.0-abc.tmp-99999999'), { recursive: true });

  const saved = process.env.PATH;
  process.env.PATH = '/nonexistent';
  t.teardown(() => {
    process.env.PATH = saved;
  });
  const progress: string[] = [];
  let settled = false;
  const second = provision({ root: repoRoot(), cacheDir, progress: (line) => progress.push(line) }).finally(() => {
    settled = true;
  });
  await waitFor(async () => (progress.length > 0 ? true : undefined), { what: 'the second run to report the wait' });
  t.match(progress[0], /waiting for another provisioning run/);
  t.notOk(settled, 'it waits while the first run lives');
  t.ok(existsSync(path.join(cacheDir, 'consul-1.0.0-abc.tmp-99999999')), "the first run's staging folder is not touched");

  first.stdin?.end();
  await t.rejects(second, { code: 'MESH_E_PROVISION_TOOL_MISSING' }, 'then it runs (and stops at the missing python3)');
  t.notOk(existsSync(path.join(cacheDir, 'consul-1.0.0-abc.tmp-99999999')), 'a staging folder left by a run that is gone was removed');
  t.match(progress, [/waiting/, /removed consul-1\.0\.0-abc\.tmp-99999999, left by a run that did not finish/]);
  t.notOk(existsSync(path.join(cacheDir, LOCK_NAME)), 'the lock is released after a failed run');
});
