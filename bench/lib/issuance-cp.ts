/**
 * The real control plane in its own process for the issuance benchmarks
 * (bench/ca-issuance.ts, bench/lib/vs-consul-issuance.ts): a child running
 * the built `mesh-controlplane run`, its listen address read from its log,
 * with no rate limit, so what is measured is issuing.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { repoRoot } from '../../scripts/repo-root.js';

export interface BenchControlPlane {
  address: string;
  pid: number;
  stop: () => Promise<void>;
}

/** CPU milliseconds (user + system) a process has used, from /proc. */
export function cpuMs(pid: number): number {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    throw new Error(`process ${pid} is gone; see its log above`);
  }
  const fields = stat.split(') ')[1]?.split(' ') ?? [];
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

/** Starts `mesh-controlplane run` with its data in dir/cp; signingWorkers undefined keeps the default. */
export async function startBenchControlPlane(
  dir: string,
  options: { trustDomain: string; signingWorkers?: number },
): Promise<BenchControlPlane> {
  const config = path.join(dir, 'cp.yaml');
  await writeFile(
    config,
    `dataDir: ${dir}/cp\nlisten: 127.0.0.1:0\ntrustDomain: ${options.trustDomain}\nrateLimit: { perSecond: 1000000, burst: 1000000 }\nlog: { level: warn }\n${options.signingWorkers === undefined ? '' : `signingWorkers: ${options.signingWorkers}\n`}`,
  );
  const profile = process.env.MESH_BENCH_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.MESH_BENCH_CPU_PROF] : [];
  const child = spawn(process.execPath, [...profile, path.join(repoRoot(), 'dist', 'controlplane', 'main.js'), 'run', '--config', config], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let stopping = false;
  const address = await new Promise<string>((resolve, reject) => {
    let out = '';
    let ready = false;
    child.stdout.on('data', (chunk: Buffer) => {
      // Its log (warnings and errors after start-up) goes on to our stderr.
      if (ready) process.stderr.write(chunk);
      out += chunk.toString();
      const match = /"listen":"([^"]+)"/.exec(out);
      if (match?.[1] && !ready) {
        ready = true;
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    child.once('exit', (code, signal) => {
      const why = `mesh-controlplane exited with ${signal ?? code}`;
      if (stopping) return;
      process.stderr.write(`${why} during the benchmark\n`);
      process.exitCode = 1;
      reject(new Error(why));
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`mesh-controlplane did not report its listen address within 30 s; its stdout: ${out.slice(-500)}`));
    }, 30_000).unref();
  });
  return {
    address,
    pid: child.pid ?? 0,
    stop: () =>
      new Promise((resolve) => {
        stopping = true;
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}
