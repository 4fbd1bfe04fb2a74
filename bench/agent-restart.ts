/**
 * `npm run bench -- agent-restart [-- --runs N]`: how fast `mesh-agent run`
 * brings traffic back, and how fast it stops. One host (web calls api through
 * the mesh) with the real control plane (its own process), a Consul dev agent
 * and the provisioned Envoy; N runs of each:
 * - start with the control plane up: from the spawn of `mesh-agent run` until
 *   web -> api answers through Envoy (polled every 20 ms); the first run joins
 *   with fresh SVIDs, the later ones find them on disk;
 * - restart with the control plane stopped (SIGSTOP: it accepts nothing and
 *   answers nothing), the SVIDs read from disk: the same time; target 5 s;
 * - after each run, SIGTERM: from the signal until the process exits (drain
 *   time 1 s in this configuration).
 * Each run checks that the port stops answering after the exit, so a leftover
 * Envoy cannot make the next run look fast.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { agentStatus } from '../test/support/agent-process.js';
import type { ManagedChild } from '../test/support/child.js';
import { startConsulDev } from '../test/support/consul.js';
import { adminJoinSource, spawnControlPlane } from '../test/support/controlplane.js';
import { getJson } from '../test/support/mesh-apps.js';
import { type MeshHost, meshHost, runAgent, startWebApi } from '../test/support/mesh-world.js';
import { waitFor } from '../test/support/wait.js';
import { pct } from './lib/stats.js';
import { formatTable } from './lib/table.js';

const TD = 'example.org';
const runsArg = process.argv.indexOf('--runs');
const RUNS = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 5;
const TARGET_MS = 5_000;
const DRAIN = '1s';

type Cleanup = () => unknown;

interface Run {
  startMs: number;
  exitMs: number;
}

/** One run: spawn the agent, wait for traffic, SIGTERM, wait for the exit; the port must then be dead. */
async function oneRun(host: MeshHost, apiLocal: number, svidSource?: 'disk'): Promise<Run> {
  const cleanups: Cleanup[] = [];
  const started = performance.now();
  const agent: ManagedChild = runAgent({ teardown: (fn) => cleanups.push(fn) }, host);
  try {
    await waitFor(() => getJson(apiLocal).catch(() => undefined), {
      timeoutMs: 60_000,
      intervalMs: 20,
      what: 'web -> api through the mesh',
      fatal: () => (agent.exited() ? `the agent exited:\n${agent.output().slice(-3000)}` : undefined),
    });
    const startMs = performance.now() - started;
    if (svidSource !== undefined) {
      const status = await agentStatus<{ workloads: Array<{ svid: { source?: string } }> }>(host.fx.statusAddr);
      const sources = [...new Set(status.workloads.map((w) => w.svid.source))];
      if (sources.join() !== svidSource) throw new Error(`the SVIDs came from ${sources.join(', ')}, not ${svidSource}`);
    }
    const exited = new Promise<number>((resolve) => agent.process.once('exit', () => resolve(performance.now())));
    const sentAt = performance.now();
    agent.process.kill('SIGTERM');
    const exitMs = (await exited) - sentAt;
    if (agent.process.exitCode !== 0) throw new Error(`the agent exited with ${agent.process.exitCode}:\n${agent.output().slice(-3000)}`);
    if (
      (await getJson(apiLocal).then(
        () => true,
        () => false,
      )) === true
    )
      throw new Error('the mesh port still answers after the exit');
    return { startMs, exitMs };
  } finally {
    for (const c of cleanups.reverse()) await c();
  }
}

const cleanups: Cleanup[] = [];
const teardown = { teardown: (fn: Cleanup) => cleanups.push(fn) };
const results: Record<'up' | 'stopped', Run[]> = { up: [], stopped: [] };
try {
  const base = await mkdtemp(path.join(os.tmpdir(), 'mesh-ar-'));
  cleanups.push(() => rm(base, { recursive: true, force: true }));
  const cp = await spawnControlPlane(path.join(base, 'cp'), TD);
  cleanups.push(async () => {
    if (!cp.child.exited()) process.kill(cp.child.pid, 'SIGCONT');
    await cp.child.stop();
  });
  const consul = await startConsulDev();
  cleanups.push(() => consul.stop());
  const apps = await startWebApi(teardown);
  const host = await meshHost(teardown, {
    join: adminJoinSource(cp),
    consulAddr: consul.httpAddr,
    allow: [`spiffe://${TD}/ns/default/sa/web`, `spiffe://${TD}/ns/default/sa/api`],
    config: { trustDomain: undefined },
    envoy: { drainTime: DRAIN, restartBackoffInitial: '200ms', restartBackoffMax: '1s' },
    workloads: apps.files(),
  });
  for (let i = 0; i < RUNS; i++) {
    results.up.push(await oneRun(host, apps.ports.apiLocal));
    process.stdout.write(`agent-restart: control plane up, run ${i + 1}/${RUNS}\n`);
  }
  process.kill(cp.child.pid, 'SIGSTOP');
  try {
    for (let i = 0; i < RUNS; i++) {
      results.stopped.push(await oneRun(host, apps.ports.apiLocal, 'disk'));
      process.stdout.write(`agent-restart: control plane stopped, run ${i + 1}/${RUNS}\n`);
    }
  } finally {
    process.kill(cp.child.pid, 'SIGCONT');
  }
} finally {
  for (const c of cleanups.reverse())
    await Promise.resolve(c()).catch((err) => process.stderr.write(`cleanup: ${(err as Error).message}\n`));
}

const ms = (v: number) => v.toFixed(0);
const row = (what: string, values: number[], target: string) => [what, values.length, ms(pct(values, 50)), ms(Math.max(...values)), target];
const worst = Math.max(...results.stopped.map((r) => r.startMs));
process.stdout.write(
  `${formatTable(
    ['figure (ms)', 'runs', 'p50', 'max', 'target'],
    [
      row(
        'start -> traffic, control plane up',
        results.up.map((r) => r.startMs),
        '-',
      ),
      row(
        'start -> traffic, control plane stopped (SVIDs from disk)',
        results.stopped.map((r) => r.startMs),
        `< ${TARGET_MS}: ${worst < TARGET_MS ? 'met' : 'NOT met'}`,
      ),
      row(
        `SIGTERM -> exit (drain ${DRAIN})`,
        [...results.up, ...results.stopped].map((r) => r.exitMs),
        '-',
      ),
    ],
  )}\n`,
);
