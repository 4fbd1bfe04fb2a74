/**
 * scripts/run-tests.ts: the coverage summary is always fresh (a stale file is
 * deleted and a failed `tap report` is a failure, never a pass), UPDATE_GOLDEN=1
 * is refused over the whole suite, and the run still ends with its summary line.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { repoRoot } from '../../scripts/repo-root.js';
import { coverageLines, coverageSummaryPath, refusal } from '../../scripts/run-tests.js';
import { untracked } from '../support/child.js';

function summary(root: string, files: Record<string, [number, number]>): string {
  const entries = Object.entries(files).map(([f, [total, covered]]) => [path.join(root, f), { lines: { total, covered } }]);
  return JSON.stringify(Object.fromEntries([['total', { lines: { total: 1, covered: 1 } }], ...entries]));
}

t.test('coverage comes from a fresh tap report over lib/, agent/, controlplane/ and scripts/', async (t) => {
  const root = t.testdir({});
  const file = coverageSummaryPath(root);
  mkdirSync(path.dirname(file), { recursive: true });
  const lines = await coverageLines(root, async () => {
    writeFileSync(file, summary(root, { 'lib/a.ts': [10, 9], 'agent/b.ts': [10, 8], 'test/c.ts': [100, 0] }));
    return 0;
  });
  t.equal(lines, 85, 'test/ files are not counted');

  // An earlier run's summary: a report that fails (or writes nothing) must not reuse it.
  writeFileSync(file, summary(root, { 'lib/a.ts': [10, 10] }));
  await t.rejects(
    coverageLines(root, async () => 1),
    /tap report json-summary exited with 1/,
  );
  t.notOk(existsSync(file), 'the stale summary was deleted before the report');
  writeFileSync(file, summary(root, { 'lib/a.ts': [10, 10] }));
  await t.rejects(
    coverageLines(root, async () => 0),
    { code: 'ENOENT' },
    'a report that wrote nothing is an error',
  );
  await t.rejects(
    coverageLines(root, async () => {
      writeFileSync(file, summary(root, { 'test/c.ts': [10, 10] }));
      return 0;
    }),
    /covers no file/,
  );
});

t.test('UPDATE_GOLDEN=1 is taken only with the test files named', async (t) => {
  t.match(refusal([], { UPDATE_GOLDEN: '1' }), /name the test files/);
  t.match(refusal(['--grep=x'], { UPDATE_GOLDEN: '1' }), /UPDATE_GOLDEN=1/);
  t.equal(refusal(['test/agent/xds/golden.test.ts'], { UPDATE_GOLDEN: '1' }), undefined);
  t.equal(refusal([], {}), undefined);
  t.equal(refusal([], { UPDATE_GOLDEN: '0' }), undefined);
});

t.test('a refused run still ends with the summary line and exit 1', async (t) => {
  const script = path.join(repoRoot(), 'dist', 'scripts', 'run-tests.js');
  const [command, args] = untracked(process.execPath, [script]);
  // Not under npm test: without MESH_NPM_TEST_TIMES the closing lines are this run's own.
  const { MESH_NPM_TEST_TIMES: _times, ...env } = process.env;
  const run = promisify(execFile)(command, args, { env: { ...env, UPDATE_GOLDEN: '1' } });
  const err = (await run.then(
    () => undefined,
    (e: unknown) => e,
  )) as { code?: number; stdout?: string } | undefined;
  t.equal(err?.code, 1, 'exit 1');
  const lines = (err?.stdout ?? '').trimEnd().split('\n');
  t.match(lines[0], /^# FAILED: UPDATE_GOLDEN=1 rewrites golden files/);
  t.match(lines.at(-2), /^# tests: \d+\.\d s$/);
  t.equal(lines.at(-1), '0 passed, 1 failed');
});
