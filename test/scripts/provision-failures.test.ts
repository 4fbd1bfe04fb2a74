/**
 * Provisioning fails clearly when its tools are missing, and waits for another
 * run's lock instead of building twice. Each tap test file is its own process,
 * so changing PATH here affects nothing else.
 */
import { mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { provision } from '../../scripts/provision.js';
import { repoRoot } from '../../scripts/repo-root.js';

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

t.test('a second run waits for the lock of the first', async (t) => {
  const cacheDir = t.testdir({});
  const lock = path.join(cacheDir, '.provision.lock');
  mkdirSync(lock);
  const progress: string[] = [];
  const saved = process.env.PATH;
  process.env.PATH = '/nonexistent';
  t.teardown(() => {
    process.env.PATH = saved;
  });
  const started = Date.now();
  setTimeout(() => rmSync(lock, { recursive: true }), 800);
  await t.rejects(provision({ root: repoRoot(), cacheDir, progress: (line) => progress.push(line) }), {
    code: 'MESH_E_PROVISION_TOOL_MISSING',
  });
  t.ok(Date.now() - started >= 700, 'it waited for the lock to go');
  t.match(progress[0], /waiting for another provisioning run/);
});
