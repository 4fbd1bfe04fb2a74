// `npm test`: build, typecheck, lint, provision, then the tests, each phase timed.
// Plain JavaScript so it runs before anything is built. The phase times and the
// start time go to scripts/run-tests.ts in MESH_NPM_TEST_TIMES; it prints them,
// with the total, just before its closing `N passed, N failed` line, which stays
// the last line of the run. When an earlier phase fails, this script prints that
// phase's failure line and then `0 passed, 1 failed` itself, so the run always
// ends with the line CI reads. Arguments after `npm test --` go to the tests phase.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const TIMES_ENV = 'MESH_NPM_TEST_TIMES';

/** The closing line when a phase before the tests failed: that phase is the one failure (summaryLine's form). */
export const PHASE_FAILED_SUMMARY = '0 passed, 1 failed';

/** npm itself: the one running this script when there is one, else `npm` on PATH. */
function npm(...args) {
  const cli = process.env.npm_execpath;
  return cli ? { command: process.execPath, args: [cli, ...args] } : { command: 'npm', args };
}

export function npmTestPhases(testArgs = []) {
  return [
    { name: 'build', ...npm('run', '-s', 'build') },
    { name: 'typecheck', ...npm('run', '-s', 'typecheck') },
    { name: 'lint', ...npm('run', '-s', 'lint') },
    { name: 'provision', command: process.execPath, args: ['dist/scripts/provision-main.js'] },
    { name: 'tests', command: process.execPath, args: ['dist/scripts/run-tests.js', ...testArgs] },
  ];
}

const seconds = (ms) => `${(ms / 1000).toFixed(1)} s`;

/** `build 20.1 s, typecheck 9.8 s`: phases as [name, ms] pairs. */
export function formatPhases(phases) {
  return phases.map(([name, ms]) => `${name} ${seconds(ms)}`).join(', ');
}

function runPhase(phase, env, cwd, stderr) {
  return new Promise((resolve) => {
    const child = spawn(phase.command, phase.args, { cwd, env, stdio: 'inherit' });
    child.on('error', (err) => {
      stderr.write(`npm test: ${phase.name}: ${err.message}\n`);
      resolve(1);
    });
    child.on('close', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}

/**
 * Runs the phases in order and stops at the first that fails (its exit code is
 * returned). The last phase gets the start time and the earlier phases' times.
 * A failed earlier phase ends stdout with its failure line and the summary.
 */
export async function runPhases(
  phases,
  { cwd = process.cwd(), env = process.env, now = Date.now, stdout = process.stdout, stderr = process.stderr } = {},
) {
  const startedAt = now();
  const done = [];
  for (const [i, phase] of phases.entries()) {
    const last = i === phases.length - 1;
    const phaseEnv = last ? { ...env, [TIMES_ENV]: JSON.stringify({ startedAt, phases: done }) } : env;
    const began = now();
    const code = await runPhase(phase, phaseEnv, cwd, stderr);
    done.push([phase.name, now() - began]);
    if (code !== 0) {
      // The tests phase printed the timing and its closing `N passed, N failed` line, which must stay last.
      if (!last) {
        const failure = `# npm test: ${phase.name} failed (exit ${code}); total ${seconds(now() - startedAt)} (${formatPhases(done)})`;
        stdout.write(`${failure}\n${PHASE_FAILED_SUMMARY}\n`);
      }
      return code;
    }
  }
  return 0;
}

const here = fileURLToPath(import.meta.url);
if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === here) {
  const root = path.dirname(path.dirname(here));
  runPhases(npmTestPhases(process.argv.slice(2)), { cwd: root }).then((code) => {
    process.exitCode = code;
  });
}
