/**
 * Control-plane start: wall time from spawning `mesh-controlplane run` to its
 * ready line, its resident set size then, and whether @peculiar/x509 was
 * loaded by then. Two scenarios: a first start (the CA is created, which needs
 * @peculiar/x509) and a restart over the same data folder (the common case,
 * which should not load it). A preload answers SIGUSR2 with the process's own
 * view: rss and whether reflect-metadata, which lib/x509/peculiar.ts loads
 * first, has defined Reflect.getMetadata.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { repoRoot } from '../scripts/repo-root.js';
import { formatTable } from './lib/table.js';

const RUNS = Number(process.env.RUNS ?? 7);
/** CP_MAIN: another build's dist/controlplane/main.js, to compare (e.g. the commit before a change). */
const MAIN = process.env.CP_MAIN ?? path.join(repoRoot(), 'dist', 'controlplane', 'main.js');
const PROBE = `data:text/javascript,process.on('SIGUSR2',()=>process.stderr.write('PROBE '+JSON.stringify({peculiar:typeof Reflect.getMetadata==='function',rss:process.memoryUsage().rss})+'\\n'))`;

interface Sample {
  readyMs: number;
  rssMb: number;
  peculiar: boolean;
}

/** Resolves with the first stdout/stderr line matching `pattern`. */
function lineFrom(child: ChildProcess, stream: 'stdout' | 'stderr', pattern: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffered = '';
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString();
      const line = buffered.split('\n').find((l) => pattern.test(l));
      if (line !== undefined) {
        child[stream]?.off('data', onData);
        resolve(line);
      }
    };
    child[stream]?.on('data', onData);
    child.once('exit', (code) => reject(new Error(`the control plane exited (${code}) before printing ${pattern}`)));
  });
}

async function startOnce(dataDir: string): Promise<Sample> {
  const started = process.hrtime.bigint();
  const child = spawn(
    process.execPath,
    [`--import=${PROBE}`, MAIN, 'run', '--data-dir', dataDir, '--listen', '127.0.0.1:0', '--trust-domain', 'bench.example'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  try {
    await lineFrom(child, 'stdout', /"adminSocket"/);
    const readyMs = Number(process.hrtime.bigint() - started) / 1e6;
    const probe = lineFrom(child, 'stderr', /^PROBE /);
    child.kill('SIGUSR2');
    const { peculiar, rss } = JSON.parse((await probe).slice('PROBE '.length)) as { peculiar: boolean; rss: number };
    return { readyMs, rssMb: rss / 2 ** 20, peculiar };
  } finally {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  }
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;

const first: Sample[] = [];
const restart: Sample[] = [];
for (let i = 0; i < RUNS; i++) {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'cp-start-'));
  try {
    first.push(await startOnce(dataDir));
    restart.push(await startOnce(dataDir));
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
}

const row = (what: string, samples: Sample[]) => [
  what,
  median(samples.map((s) => s.readyMs)),
  Math.min(...samples.map((s) => s.readyMs)),
  median(samples.map((s) => s.rssMb)),
  samples.every((s) => s.peculiar) ? 'yes' : samples.some((s) => s.peculiar) ? 'some runs' : 'no',
];
process.stdout.write(
  `${formatTable(
    ['scenario', 'ready ms (median)', 'ready ms (min)', 'RSS MiB (median)', '@peculiar/x509 loaded'],
    [row('first start (creates the CA)', first), row('restart (CA exists)', restart)],
  )}\n(${RUNS} runs each)\n`,
);
