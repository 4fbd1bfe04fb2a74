/**
 * bench/ca-issuance: sustained durable issuances per second of the real
 * control plane (a child process: CSR parse + signature check, sign, row and
 * audit row committed and the WAL synced before the answer) over mTLS gRPC,
 * with 1, 8 and 64 concurrent callers, then p50/p99 latency at a fixed 500
 * issuances/s. The load comes from issuance-load (test/tools, grpc-go), a
 * separate lean process, so the table measures the server; one more row
 * drives it through the agent's own grpc-js client for comparison.
 *   npm run bench -- ca-issuance [-- --seconds 5] [--only 64] [--workers N]
 * Targets: >= 2,000 issuances/s; p99 < 20 ms at 500/s.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { type ControlPlaneClient, connectControlPlane } from '../agent/identity/cp-client.js';
import { loadNodeIdentity } from '../agent/identity/identity-store.js';
import { newKeyPair } from '../lib/secret-files.js';
import { createCsr } from '../lib/x509/csr-builder.js';
import { adminJoinSource, joinNode } from '../test/support/controlplane.js';
import { cpuMs, startBenchControlPlane } from './lib/issuance-cp.js';
import { controlPlaneServerId, encodeSignWorkload, runIssuanceLoad } from './lib/issuance-load.js';
import { pct } from './lib/stats.js';
import { formatTable } from './lib/table.js';

const secondsArg = process.argv.indexOf('--seconds');
const SECONDS = secondsArg > 0 ? Number(process.argv[secondsArg + 1]) : 5;
const ID = 'spiffe://bench.example/ns/default/sa/web';
const onlyArg = process.argv.indexOf('--only');
const ONLY = onlyArg > 0 ? Number(process.argv[onlyArg + 1]) : undefined;
const workersArg = process.argv.indexOf('--workers');
const WORKERS = workersArg > 0 ? Number(process.argv[workersArg + 1]) : undefined;

/** The agent's own grpc-js client in this process, closed loop; the same figures issuance-load reports. */
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
  const cpu0 = process.cpuUsage();
  await Promise.all(Array.from({ length: concurrency }, (_, i) => worker(i)));
  const cpu = process.cpuUsage(cpu0);
  return {
    count: latencies.length,
    errors,
    elapsedMs: performance.now() - started,
    p50Ms: pct(latencies, 50),
    p99Ms: pct(latencies, 99),
    cpuMs: (cpu.user + cpu.system) / 1000,
  };
}

/** Server CPU per issuance around one run of `fn` that issued `count` certificates. */
async function withServerCpu<T extends { count: number }>(pid: number, fn: () => Promise<T>): Promise<T & { serverCpuPerOp: number }> {
  const before = cpuMs(pid);
  const r = await fn();
  return { ...r, serverCpuPerOp: (cpuMs(pid) - before) / Math.max(1, r.count) };
}

async function main() {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mesh-bench-'));
  process.stderr.write('starting the control plane\n');
  const cp = await startBenchControlPlane(dir, {
    trustDomain: 'bench.example',
    ...(WORKERS === undefined ? {} : { signingWorkers: WORKERS }),
  });
  try {
    const agentDir = path.join(dir, 'agent');
    process.stderr.write(`joining a node to ${cp.address}\n`);
    const source = adminJoinSource({ address: cp.address, dataDir: path.join(dir, 'cp'), trustDomain: 'bench.example' });
    await joinNode(source, 'bench', [ID], agentDir);
    const identity = await loadNodeIdentity(agentDir);
    // Every request carries its own key's CSR; 512 of them, used round-robin.
    process.stderr.write('making 512 CSRs, then the load tool (provisioned if missing)\n');
    const csrs = await Promise.all(
      Array.from({ length: 512 }, () => {
        const key = newKeyPair();
        return createCsr(key.privateKey, key.publicKey);
      }),
    );
    const requests = csrs.map((csr) => encodeSignWorkload(ID, csr));
    const load = (loadShape: { concurrency: number } | { rate: number }, warmupMs = 0) =>
      runIssuanceLoad({
        address: cp.address,
        serverId: controlPlaneServerId('bench.example'),
        bundlePem: identity.bundlePem,
        node: { chainPem: identity.chainPem, keyPem: identity.keyPem },
        requests,
        load: loadShape,
        durationMs: SECONDS * 1000,
        warmupMs,
      });
    process.stderr.write('warming up (JIT, connections)\n');
    await load({ concurrency: 8 }, 2000);

    const rows: Array<Array<string | number>> = [];
    const row = (
      label: string,
      r: { count: number; elapsedMs: number; p50Ms: number; p99Ms: number; errors: number; cpuMs: number; serverCpuPerOp: number },
    ) => {
      const rate = r.count / (r.elapsedMs / 1000);
      rows.push([label, r.count, rate, r.p50Ms, r.p99Ms, r.serverCpuPerOp, r.cpuMs / Math.max(1, r.count), r.errors]);
      return rate;
    };
    const rates: number[] = [];
    for (const concurrency of ONLY === undefined ? [1, 8, 64] : [ONLY]) {
      process.stderr.write(`${concurrency} concurrent for ${SECONDS} s\n`);
      const r = await withServerCpu(cp.pid, () => load({ concurrency }));
      rates.push(row(`${concurrency} concurrent`, r));
    }
    process.stderr.write(`fixed 500/s for ${SECONDS} s\n`);
    const fixed = await withServerCpu(cp.pid, () => load({ rate: 500 }));
    row('fixed 500/s', fixed);

    // For comparison: the agent's own client (grpc-js) in this process, as agents really call.
    process.stderr.write(`64 concurrent through the agent's grpc-js client for ${SECONDS} s\n`);
    const clients = Array.from({ length: 8 }, () =>
      connectControlPlane({
        address: cp.address,
        trustDomain: 'bench.example',
        bundlePem: identity.bundlePem,
        node: { chainPem: identity.chainPem, keyPem: identity.keyPem },
      }),
    );
    await Promise.all(clients.map((c) => c.getBundle()));
    row('64 concurrent, grpc-js client', await withServerCpu(cp.pid, () => closedLoop(clients, 64, csrs)));
    for (const c of clients) c.close();

    process.stdout.write(
      `ca-issuance: ${SECONDS} s per row; durable (group commit, WAL fdatasync before each answer); mTLS gRPC; control plane in its own process with ${WORKERS ?? 'default'} signing workers; load from issuance-load (grpc-go, own process) unless noted; ${os.cpus().length} cores\n\n`,
    );
    process.stdout.write(
      `${formatTable(['load', 'issued', 'issuances/s', 'p50 ms', 'p99 ms', 'server CPU ms/op', 'client CPU ms/op', 'errors'], rows)}\n\n`,
    );
    const best = Math.max(...rates);
    process.stdout.write(
      `target >= 2,000 issuances/s: ${best >= 2000 ? 'met' : 'NOT met'} (${best.toFixed(0)}/s); target p99 < 20 ms at 500/s: ${fixed.p99Ms < 20 ? 'met' : 'NOT met'} (${fixed.p99Ms.toFixed(2)} ms)\n`,
    );
  } finally {
    await cp.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
