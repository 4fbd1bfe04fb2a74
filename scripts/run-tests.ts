/**
 * The test command behind `npm test`: runs tap over every test file (unit,
 * integration, privileged), streams the TAP output, checks the coverage floor,
 * prints the time taken (with the phases of `npm test` when scripts/npm-test.mjs
 * started it), and ends with the line CI reads: `N passed, N failed[, N skipped]`.
 * A test is a `t.test()` block in a file (or a top-level assertion); a file
 * that crashes before reporting counts as one failure.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Parser, type Result } from 'tap-parser';
import { repoRoot } from './repo-root.js';

/** Lines of lib/, agent/, controlplane/ and scripts/ the tests must cover (percent). */
export const COVERAGE_FLOOR = 85;

export interface Tally {
  passed: number;
  failed: number;
  skipped: number;
  failures: string[];
}

export function summaryLine(tally: Pick<Tally, 'passed' | 'failed' | 'skipped'>): string {
  const base = `${tally.passed} passed, ${tally.failed} failed`;
  return tally.skipped > 0 ? `${base}, ${tally.skipped} skipped` : base;
}

function countResult(tally: Tally, result: Result, file: string): void {
  if (result.skip || result.todo) tally.skipped++;
  else if (result.ok) tally.passed++;
  else {
    tally.failed++;
    tally.failures.push(`${file} > ${result.name}`);
  }
}

/** A TAP parser that tallies per-file tests into `tally` as output is written to it. */
export function tallyingParser(tally: Tally): Parser {
  const parser = new Parser();
  const failedInside = new Map<string, number>();
  parser.on('child', (fileParser: Parser) => {
    const file = fileParser.name;
    failedInside.set(file, 0);
    fileParser.on('assert', (result: Result) => {
      if (!result.ok && !result.skip && !result.todo) failedInside.set(file, (failedInside.get(file) ?? 0) + 1);
      countResult(tally, result, file);
    });
  });
  // A file that crashed or timed out outside any test still fails the run.
  parser.on('assert', (fileResult: Result) => {
    if (fileResult.ok || fileResult.skip || fileResult.todo) return;
    if ((failedInside.get(fileResult.name) ?? 0) > 0) return;
    tally.failed++;
    tally.failures.push(`${fileResult.name} (the file failed outside its tests)`);
  });
  return parser;
}

/** What scripts/npm-test.mjs passes in MESH_NPM_TEST_TIMES: its start time and the earlier phases' times (ms). */
export interface NpmTestTimes {
  startedAt: number;
  phases: Array<[string, number]>;
}

export function parseNpmTestTimes(text: string | undefined): NpmTestTimes | undefined {
  if (text === undefined || text === '') return undefined;
  try {
    const value = JSON.parse(text) as Partial<NpmTestTimes>;
    const phases = value.phases;
    if (typeof value.startedAt !== 'number' || !Array.isArray(phases)) return undefined;
    if (!phases.every((p) => Array.isArray(p) && typeof p[0] === 'string' && typeof p[1] === 'number')) return undefined;
    return { startedAt: value.startedAt, phases };
  } catch {
    return undefined;
  }
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/**
 * The line printed just before the summary: `# npm test: total 612.0 s (build 20.1 s, ..., tests 570.2 s)`
 * under npm test, `# tests: 570.2 s` when run-tests runs alone.
 */
export function timingLine(times: NpmTestTimes | undefined, testsStartedAt: number, now: number): string {
  const tests = now - testsStartedAt;
  if (times === undefined) return `# tests: ${seconds(tests)}`;
  const phases = [...times.phases, ['tests', tests] as const].map(([name, ms]) => `${name} ${seconds(ms)}`).join(', ');
  return `# npm test: total ${seconds(now - times.startedAt)} (${phases})`;
}

/** The end of the output: the failures, the time taken, and the summary line last of all. */
export function closingLines(tally: Tally, timing: string): string {
  return [...tally.failures.map((f) => `# FAILED: ${f}`), timing, summaryLine(tally)].map((l) => `${l}\n`).join('');
}

export function emptyTally(): Tally {
  return { passed: 0, failed: 0, skipped: 0, failures: [] };
}

/**
 * Runs tap with MESH_TEST_RUN_DIR set to a fresh folder of this run, where test
 * files share what is built once per run (test/support/shared-build.ts); the
 * folder is removed when tap ends.
 */
async function runTap(root: string, args: string[], tally: Tally): Promise<number> {
  const runDir = await mkdtemp(path.join(os.tmpdir(), 'mesh-test-run-'));
  try {
    return await runTapIn(root, args, tally, runDir);
  } finally {
    await rm(runDir, { recursive: true, force: true });
  }
}

async function runTapIn(root: string, args: string[], tally: Tally, runDir: string): Promise<number> {
  const parser = tallyingParser(tally);
  const tap = path.join(root, 'node_modules', '.bin', 'tap');
  const child = spawn(tap, ['--reporter=tap', ...args], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, MESH_TEST_RUN_DIR: runDir },
  });
  child.stdout.on('data', (chunk: Buffer) => {
    process.stdout.write(chunk);
    parser.write(chunk);
  });
  const code = await new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? 1)));
  parser.end();
  return code;
}

/** Where `tap report json-summary` writes the coverage summary. */
export function coverageSummaryPath(root: string): string {
  return path.join(root, '.tap', 'report', 'coverage-summary.json');
}

/**
 * Line coverage of lib/, agent/, controlplane/ and scripts/ (percent) from a fresh
 * `tap report`: a summary left by an earlier run is deleted first and a failed
 * report is an error, so a stale file can never pass the floor.
 */
export async function coverageLines(root: string, report: (root: string) => Promise<number> = tapReport): Promise<number> {
  const file = coverageSummaryPath(root);
  await rm(file, { force: true });
  const code = await report(root);
  if (code !== 0) throw new Error(`tap report json-summary exited with ${code}`);
  const summary = JSON.parse(await readFile(file, 'utf8')) as Record<string, { lines: { total: number; covered: number } }>;
  let total = 0;
  let covered = 0;
  for (const [name, entry] of Object.entries(summary)) {
    if (name === 'total') continue;
    const rel = path.relative(root, name);
    if (!/^(lib|agent|controlplane|scripts)\//.test(rel)) continue;
    total += entry.lines.total;
    covered += entry.lines.covered;
  }
  if (total === 0) throw new Error(`${file} covers no file of lib/, agent/, controlplane/ or scripts/`);
  return (100 * covered) / total;
}

async function tapReport(root: string): Promise<number> {
  const report = spawn(path.join(root, 'node_modules', '.bin', 'tap'), ['report', 'json-summary'], { cwd: root, stdio: 'ignore' });
  return new Promise<number>((resolve) => {
    report.on('error', () => resolve(127));
    report.on('close', (c) => resolve(c ?? 1));
  });
}

/**
 * Why the run must not start, or undefined. UPDATE_GOLDEN=1 rewrites golden files
 * from what the code does; over the whole suite that would silently bless every
 * regression, so it is only taken with the test files named.
 */
export function refusal(args: readonly string[], env: NodeJS.ProcessEnv): string | undefined {
  if (env.UPDATE_GOLDEN === '1' && !args.some((a) => a.endsWith('.ts') || a.endsWith('.js')))
    return 'UPDATE_GOLDEN=1 rewrites golden files: name the test files to update (node dist/scripts/run-tests.js test/path/one.test.ts)';
  return undefined;
}

async function main(tally: Tally): Promise<void> {
  const root = repoRoot();
  const args = process.argv.slice(2);
  const refused = refusal(args, process.env);
  if (refused !== undefined) {
    tally.failed++;
    tally.failures.push(refused);
    return;
  }
  const tapCode = await runTap(root, args, tally);

  if (args.length === 0) {
    // The floor applies to the whole suite only; a run of a few files covers less.
    try {
      const lines = await coverageLines(root);
      if (lines < COVERAGE_FLOOR) {
        tally.failed++;
        tally.failures.push(`coverage: lines ${lines.toFixed(1)}% below the floor of ${COVERAGE_FLOOR}%`);
      } else {
        tally.passed++;
        process.stdout.write(`# coverage: lines ${lines.toFixed(1)}% (floor ${COVERAGE_FLOOR}%)\n`);
      }
    } catch (err) {
      tally.failed++;
      tally.failures.push(`coverage: unknown (${(err as Error).message})`);
    }
  }
  if (tapCode !== 0 && tally.failed === 0) {
    tally.failed++;
    tally.failures.push(`tap exited with ${tapCode}`);
  }
}

/**
 * Runs main and prints the closing lines exactly once, whatever happens: a thrown
 * error, a rejected promise or an uncaught exception counts as one more failure,
 * so the run still ends with `N passed, N failed`.
 */
function runAndClose(): void {
  const startedAt = Date.now();
  const times = parseNpmTestTimes(process.env.MESH_NPM_TEST_TIMES);
  const tally = emptyTally();
  let closed = false;
  const close = (err?: unknown) => {
    if (closed) return;
    closed = true;
    if (err !== undefined) {
      tally.failed++;
      tally.failures.push(`run-tests: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    }
    process.stdout.write(closingLines(tally, timingLine(times, startedAt, Date.now())));
    process.exitCode = tally.failed > 0 ? 1 : 0;
  };
  process.on('uncaughtException', (err) => {
    close(err);
    process.exit(1);
  });
  process.on('unhandledRejection', (err) => {
    close(err);
    process.exit(1);
  });
  main(tally).then(
    () => close(),
    (err: unknown) => close(err),
  );
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]).endsWith(path.join('scripts', 'run-tests.js'))) {
  runAndClose();
}
