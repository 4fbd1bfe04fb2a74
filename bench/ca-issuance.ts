/**
 * bench/ca-issuance: sustained durable issuances per second of the real
 * control plane (a child process: CSR parse + signature check, sign, row and
 * audit row committed with synchronous=FULL) over mTLS gRPC, with 1, 8 and 64
 * concurrent clients, then p50/p99 latency at a fixed 500 issuances/s.
 *   npm run bench -- ca-issuance [-- --seconds 5]
 * Targets: >= 2,000 issuances/s; p99 < 20 ms at 500/s.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { type ControlPlaneClient, connectControlPlane } from '../agent/identity/cp-client.js';
import { joinMesh } from '../agent/identity/enroll.js';
import { loadNodeIdentity } from '../agent/identity/identity-store.js';
import { connectAdmin } from '../controlplane/cli/admin-client.js';
import { newKeyPair } from '../lib/secret-files.js';
import { createCsr } from '../lib/x509/csr.js';
import { toPem } from '../lib/x509/pem.js';
import { repoRoot } from '../scripts/repo-root.js';
import { pct } from './stats.js';
import { formatTable } from './table.js';

const secondsArg = process.argv.indexOf('--seconds');
const SECONDS = secondsArg > 0 ? Number(process.argv[secondsArg + 1]) : 5;
const ID = 'spiffe://bench.example/ns/default/sa/web';

/** CPU milliseconds (user + system) a process has used, from /proc. */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

async function startControlPlane(dir: string): Promise<{ address: string; pid: number; stop: () => Promise<void> }> {
  const config = path.join(dir, 'cp.yaml');
  await writeFile(
    config,
    `dataDir: ${dir}/cp\nlisten: 127.0.0.1:0\ntrustDomain: bench.example\nrateLimit: { perSecond: 1000000, burst: 1000000 }\nlog: { level: warn }\n`,
  );
  const profile = process.env.MESH_BENCH_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.MESH_BENCH_CPU_PROF] : [];
  const child = spawn(process.execPath, [...profile, path.join(repoRoot(), 'dist', 'controlplane', 'main.js'), 'run', '--config', config], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const address = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const match = /"listen":"([^"]+)"/.exec(out);
      if (match?.[1]) resolve(match[1]);
    });
    child.once('exit', (code) => reject(new Error(`mesh-controlplane exited with ${code}`)));
  });
  return {
    address,
    pid: child.pid ?? 0,
    stop: () =>
      new Promise((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

function summarize(latencies: number[], started: number, errors: number) {
  const elapsed = (performance.now() - started) / 1000;
  return {
    rate: latencies.length / elapsed,
    p50: pct(latencies, 50),
    p99: pct(latencies, 99),
    errors,
    count: latencies.length,
  };
}

async function closedLoop(clients: ControlPlaneClient[], concurrency: number, csrs: Buffer[]) {
  const latencies: number[] = [];
  const deadline = performance.now() + SECONDS * 1000;
  let errors = 0;
  const worker = async (i: number) => {
    const client = clients[i % clients.length] as ControlPlaneClient;
    let n = i;
    while (performance.now() < deadline) {
      const started = performance.now();
      try {
        await client.signWorkload(ID, csrs[n++ % csrs.length] as Buffer);
        latencies.push(performance.now() - started);
      } catch {
        errors++;
      }
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, (_, i) => worker(i)));
  return summarize(latencies, started, errors);
}

async function openLoop(clients: ControlPlaneClient[], perSecond: number, csrs: Buffer[]) {
  const latencies: number[] = [];
  const pending: Promise<void>[] = [];
  const total = perSecond * SECONDS;
  const started = performance.now();
  let errors = 0;
  for (let i = 0; i < total; i++) {
    const due = started + (i * 1000) / perSecond;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
    const t0 = performance.now();
    pending.push(
      (clients[i % clients.length] as ControlPlaneClient).signWorkload(ID, csrs[i % csrs.length] as Buffer).then(
        () => void latencies.push(performance.now() - t0),
        () => void errors++,
      ),
    );
  }
  await Promise.all(pending);
  return summarize(latencies, started, errors);
}

async function main() {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mesh-bench-'));
  const cp = await startControlPlane(dir);
  try {
    const admin = connectAdmin(path.join(dir, 'cp'));
    const { token } = await admin.call<{ token: string }>('CreateToken', { node_name: 'bench', allow: [ID], ttl_ms: 600_000 });
    const bundle = await admin.call<{ roots: Buffer[] }>('GetBundle');
    admin.close();
    const agentDir = path.join(dir, 'agent');
    await joinMesh({ address: cp.address, token, bundlePem: bundle.roots.map((d) => toPem(d)).join(''), dataDir: agentDir });
    const identity = await loadNodeIdentity(agentDir);
    const clients = Array.from({ length: 8 }, () =>
      connectControlPlane({
        address: cp.address,
        trustDomain: 'bench.example',
        bundlePem: identity.bundlePem,
        node: { chainPem: identity.chainPem, keyPem: identity.keyPem },
      }),
    );
    const csrs = Array.from({ length: 512 }, () => {
      const key = newKeyPair();
      return createCsr(key.privateKey, key.publicKey);
    });
    await Promise.all(clients.map((c) => c.getBundle()));
    await closedLoop(clients, 8, csrs); // warm-up (JIT, connections)

    const rows: Array<Array<string | number>> = [];
    const measured = async (
      label: string,
      run: () => Promise<{ count: number; rate: number; p50: number; p99: number; errors: number }>,
    ) => {
      const server0 = cpuMs(cp.pid);
      const client0 = process.cpuUsage();
      const r = await run();
      const client = process.cpuUsage(client0);
      const serverPer = (cpuMs(cp.pid) - server0) / r.count;
      const clientPer = (client.user + client.system) / 1000 / r.count;
      rows.push([label, r.count, r.rate, r.p50, r.p99, serverPer, clientPer, r.errors]);
      return r;
    };
    for (const concurrency of [1, 8, 64]) {
      await measured(`${concurrency} concurrent`, () =>
        closedLoop(clients.slice(0, Math.min(concurrency, clients.length)), concurrency, csrs),
      );
    }
    const fixed = await measured('fixed 500/s', () => openLoop(clients, 500, csrs));
    for (const c of clients) c.close();

    process.stdout.write(
      `ca-issuance: ${SECONDS} s per row, durable (synchronous=FULL, group commit), mTLS gRPC, control plane in its own process, ${os.cpus().length} cores\n\n`,
    );
    process.stdout.write(
      `${formatTable(['load', 'issued', 'issuances/s', 'p50 ms', 'p99 ms', 'server CPU ms/op', 'client CPU ms/op', 'errors'], rows)}\n\n`,
    );
    const best = Math.max(...rows.slice(0, 3).map((r) => r[2] as number));
    process.stdout.write(
      `target >= 2,000 issuances/s: ${best >= 2000 ? 'met' : 'NOT met'} (${best.toFixed(0)}/s); target p99 < 20 ms at 500/s: ${fixed.p99 < 20 ? 'met' : 'NOT met'} (${fixed.p99.toFixed(2)} ms)\n`,
    );
  } finally {
    await cp.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
