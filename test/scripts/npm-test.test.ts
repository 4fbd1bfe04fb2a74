import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { formatPhases, npmTestPhases, PHASE_FAILED_SUMMARY, type Phase, runPhases, TIMES_ENV } from '../../scripts/npm-test.mjs';
import { closingLines, emptyTally, parseNpmTestTimes, summaryLine, timingLine } from '../../scripts/run-tests.js';
import { captureIo } from '../support/cli.js';

/** A clock that moves 1.5 s at each reading: phase times are exact. */
function steppingClock(stepMs = 1500) {
  let now = 1_000_000;
  return () => {
    now += stepMs;
    return now;
  };
}

const node = (name: string, code: string): Phase => ({ name, command: process.execPath, args: ['-e', code] });

t.test('the phases of npm test, in order; arguments go to the tests', async (t) => {
  const phases = npmTestPhases(['test/lib/cli.test.ts']);
  t.same(
    phases.map((p) => p.name),
    ['build', 'typecheck', 'lint', 'provision', 'tests'],
  );
  t.same(phases.at(-1)?.args, ['dist/scripts/run-tests.js', 'test/lib/cli.test.ts']);
  t.same(phases[3]?.args, ['dist/scripts/provision-main.js']);
  t.ok(
    phases.slice(0, 3).every((p) => p.args.includes('-s')),
    'npm scripts run silently',
  );
});

t.test('the last phase gets the start time and the earlier times', async (t) => {
  const dir = t.testdir({});
  const out = path.join(dir, 'times.json');
  const code = await runPhases(
    [
      node('build', ''),
      node('lint', ''),
      node('tests', `require('node:fs').writeFileSync(${JSON.stringify(out)}, process.env.${TIMES_ENV})`),
    ],
    { now: steppingClock() },
  );
  t.equal(code, 0);
  const times = parseNpmTestTimes(await readFile(out, 'utf8'));
  t.same(times, {
    startedAt: 1_001_500,
    phases: [
      ['build', 1500],
      ['lint', 1500],
    ],
  });
});

t.test('a failing phase stops the run with its exit code, and stdout still ends with the summary line', async (t) => {
  const dir = t.testdir({});
  const marker = path.join(dir, 'ran');
  let c = captureIo();
  const code = await runPhases(
    [node('build', ''), node('lint', 'process.exit(3)'), node('tests', `require('node:fs').writeFileSync(${JSON.stringify(marker)}, '')`)],
    { now: steppingClock(), ...c.io },
  );
  t.equal(code, 3);
  t.notOk(existsSync(marker), 'later phases do not run');
  t.equal(c.out(), '# npm test: lint failed (exit 3); total 7.5 s (build 1.5 s, lint 1.5 s)\n0 passed, 1 failed\n');
  t.equal(PHASE_FAILED_SUMMARY, summaryLine({ passed: 0, failed: 1, skipped: 0 }), "the form of run-tests' summary line");

  c = captureIo();
  const missing = await runPhases([{ name: 'build', command: path.join(dir, 'no-such-program'), args: [] }, node('tests', '')], {
    now: steppingClock(),
    ...c.io,
  });
  t.equal(missing, 1, 'a program that cannot start fails its phase');
  t.match(c.err(), /npm test: build: .*ENOENT/);
  t.same(c.out().split('\n').slice(-3), ['# npm test: build failed (exit 1); total 4.5 s (build 1.5 s)', '0 passed, 1 failed', '']);

  // The tests phase prints its own closing `N passed, N failed` line, which must stay the last line.
  c = captureIo();
  const failedTests = await runPhases([node('build', ''), node('tests', 'process.exit(1)')], { now: steppingClock(), ...c.io });
  t.equal(failedTests, 1);
  t.equal(c.out() + c.err(), '', 'nothing is printed after a failed tests phase');
});

t.test('run-tests prints the total and the phases just before the summary line', async (t) => {
  const times = parseNpmTestTimes(
    JSON.stringify({
      startedAt: 0,
      phases: [
        ['build', 20_100],
        ['typecheck', 9_800],
        ['lint', 1_300],
        ['provision', 700],
      ],
    }),
  );
  const line = timingLine(times, 31_900, 600_000);
  t.equal(line, '# npm test: total 600.0 s (build 20.1 s, typecheck 9.8 s, lint 1.3 s, provision 0.7 s, tests 568.1 s)');
  t.equal(timingLine(undefined, 1_000, 13_345), '# tests: 12.3 s', 'run alone: the tests only');

  const tally = { ...emptyTally(), passed: 5, failed: 1, skipped: 2, failures: ['test/x.test.ts > y'] };
  const lines = closingLines(tally, line).split('\n');
  t.equal(lines.pop(), '', 'ends with a newline');
  t.equal(lines.at(-1), '5 passed, 1 failed, 2 skipped', 'the summary stays the last line');
  t.equal(lines.at(-2), line);
  t.equal(lines[0], '# FAILED: test/x.test.ts > y');

  t.equal(formatPhases([['lint', 1_250]]), 'lint 1.3 s');
  for (const bad of [undefined, '', 'nope', '{}', '{"startedAt":1,"phases":[["a","b"]]}', '{"startedAt":"1","phases":[]}'])
    t.equal(parseNpmTestTimes(bad), undefined, `ignored: ${String(bad)}`);
});
