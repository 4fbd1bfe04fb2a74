/**
 * bench/policy-fanout: one policy change fanned out to N agents' Policy.Watch
 * streams. Three processes: the real control plane with its SQLite policy
 * store (bench/lib/policy-cp.ts), N light stream clients over a few mTLS
 * channels, each channel a joined node (bench/lib/policy-subscribers.ts), and
 * this driver. Subscriber i watches services ['api', svc-(i mod G)] and its
 * own SPIFFE ID, so there are G interest groups; the store holds one
 * TrafficPolicy per svc-k and a ServiceIdentity for api. Each round changes
 * the api ServiceIdentity (every subscriber is concerned) and times, from
 * store.apply returning in the control plane until each subscriber has the
 * new revision: p50, p99 and max (max = all arrived). The control plane's
 * RSS is read with the N streams open.
 *   npm run bench -- policy-fanout [-- --subscribers 5000] [--channels 16] [--groups 500] [--rounds 5]
 * Target: 5,000 subscribers all have the new revision within 2 s.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { joinMesh } from '../agent/identity/enroll.js';
import { loadNodeIdentity } from '../agent/identity/identity-store.js';
import { repoRoot } from '../scripts/repo-root.js';
import { pct, rssMb } from './lib/stats.js';
import { formatTable } from './lib/table.js';

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const value = Number(process.argv[i + 1]);
  if (!Number.isInteger(value) || value < 1) {
    process.stderr.write(`MESH_E_USAGE: --${name} takes a positive whole number, not ${JSON.stringify(process.argv[i + 1] ?? '')}\n`);
    process.exit(2);
  }
  return value;
}

const SUBSCRIBERS = flag('subscribers', 5_000);
const CHANNELS = Math.min(flag('channels', 16), SUBSCRIBERS);
const GROUPS = Math.min(flag('groups', 500), SUBSCRIBERS);
const ROUNDS = flag('rounds', 5);
const TD = 'bench.example';
const TARGET_MS = 2_000;

/** A forked helper and a way to ask it something over IPC (one question at a time). */
function helper(script: string, args: string[], execArgv: string[] = []) {
  const child: ChildProcess = fork(path.join(repoRoot(), 'dist', 'bench', 'lib', script), args, {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    execArgv,
  });
  const queue: Array<(m: unknown) => void> = [];
  /** Messages that came before anyone asked for them. */
  const early: unknown[] = [];
  child.on('message', (m) => {
    const take = queue.shift();
    if (take === undefined) early.push(m);
    else take(m);
  });
  let exited = false;
  child.once('exit', (code, signal) => {
    exited = true;
    if (queue.length > 0) {
      process.stderr.write(`${script} exited with ${signal ?? code} during the benchmark\n`);
      process.exit(1);
    }
  });
  const next = <T>() =>
    new Promise<T>((resolve) => {
      if (early.length > 0) resolve(early.shift() as T);
      else queue.push((m) => resolve(m as T));
    });
  return {
    child,
    next,
    ask: <T>(message: unknown) => {
      const answer = next<T>();
      child.send(message as object);
      return answer;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        if (exited) return resolve();
        child.once('exit', () => resolve());
        child.send({ stop: true });
        setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
      }),
  };
}

const doc = (kind: string, name: string, spec: unknown) => ({ apiVersion: 'mesh.v1', kind, metadata: { name }, spec });
const apiIdentity = (round: number) =>
  doc('ServiceIdentity', 'api', {
    service: 'api',
    allowedIdentities: [`spiffe://${TD}/ns/default/sa/api`, `spiffe://${TD}/ns/default/sa/api-r${round}`],
  });

async function main() {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mesh-bench-fanout-'));
  process.stderr.write(
    `policy-fanout: ${SUBSCRIBERS} subscribers over ${CHANNELS} channels, ${GROUPS} interest groups, ${ROUNDS} rounds\n`,
  );
  const cp = helper('policy-cp.js', [path.join(dir, 'cp'), TD], ['--expose-gc']);
  const subs = helper('policy-subscribers.js', [], ['--max-old-space-size=2048']);
  try {
    const { address, bundlePem } = await cp.next<{ address: string; bundlePem: string }>();
    await subs.next();
    const rssIdle = (await cp.ask<{ rssMb: number }>({ rss: true })).rssMb;
    process.stderr.write(`control plane at ${address}; joining ${CHANNELS} nodes\n`);
    const { tokens } = await cp.ask<{ tokens: string[] }>({ tokens: CHANNELS });
    const nodes = await Promise.all(
      tokens.map(async (token, i) => {
        const dataDir = path.join(dir, `node-${i}`);
        await joinMesh({ address, token, bundlePem, dataDir, trustDomain: TD });
        const identity = await loadNodeIdentity(dataDir);
        return { chainPem: identity.chainPem, keyPem: identity.keyPem };
      }),
    );
    const documents = [
      apiIdentity(0),
      ...Array.from({ length: GROUPS }, (_, g) =>
        doc('TrafficPolicy', `svc-${g}`, { service: `svc-${g}`, connectTimeout: '1s', circuitBreaker: { maxConnections: 100 } }),
      ),
    ];
    const initial = await cp.ask<{ revision: number }>({ apply: documents });
    process.stderr.write(`store at revision ${initial.revision} (${documents.length} resources); opening ${SUBSCRIBERS} streams\n`);
    const openStarted = performance.now();
    await subs.ask({ open: { address, trustDomain: TD, bundlePem, nodes, subscribers: SUBSCRIBERS, groups: GROUPS } });
    const openMs = performance.now() - openStarted;
    const open = await cp.ask<{ rssMb: number; streams: number; groups: number }>({ rss: true });
    process.stderr.write(
      `${open.streams} streams open in ${openMs.toFixed(0)} ms (${open.groups} groups); control plane RSS ${open.rssMb.toFixed(1)} MB\n`,
    );

    const rounds: Array<{ p50: number; p99: number; max: number }> = [];
    const all: number[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const revision = initial.revision + round;
      const arrived = subs.ask<{ arrivalsMs: number[] }>({ expect: revision });
      const applied = await cp.ask<{ revision: number; returnedAtMs: number }>({ apply: [apiIdentity(round)] });
      if (applied.revision !== revision) throw new Error(`expected revision ${revision}, the store is at ${applied.revision}`);
      const { arrivalsMs } = await arrived;
      const delays = arrivalsMs.map((at) => at - applied.returnedAtMs);
      all.push(...delays);
      rounds.push({ p50: pct(delays, 50), p99: pct(delays, 99), max: Math.max(...delays) });
      process.stderr.write(`round ${round}: all ${delays.length} have revision ${revision} after ${Math.max(...delays).toFixed(1)} ms\n`);
    }
    const afterRounds = await cp.ask<{ rssMb: number }>({ rss: true });

    process.stdout.write(
      `policy-fanout: ${SUBSCRIBERS} Policy.Watch streams over ${CHANNELS} mTLS channels (one joined node each), ${open.groups} interest groups, ${documents.length} resources; control plane, subscribers and driver in 3 processes; ${ROUNDS} rounds; ${os.cpus().length} cores\n\n`,
    );
    const rows: Array<Array<string | number>> = rounds.map((r, i) => [`round ${i + 1}`, r.p50, r.p99, r.max]);
    rows.push(['all rounds', pct(all, 50), pct(all, 99), Math.max(...all)]);
    process.stdout.write(`${formatTable(['apply returned -> subscriber has it (ms)', 'p50', 'p99', 'max (all arrived)'], rows)}\n\n`);
    process.stdout.write(
      `${formatTable(
        ['figure', 'value'],
        [
          ['streams open', open.streams],
          ['time to open them and deliver the first set', `${openMs.toFixed(0)} ms`],
          ['control plane RSS, no streams', `${rssIdle.toFixed(1)} MB`],
          [`control plane RSS, ${open.streams} streams open`, `${open.rssMb.toFixed(1)} MB`],
          ['control plane RSS after the rounds', `${afterRounds.rssMb.toFixed(1)} MB`],
          ['per stream', `${(((open.rssMb - rssIdle) * 1024) / Math.max(1, open.streams)).toFixed(1)} KB`],
          ['driver RSS', `${rssMb().toFixed(1)} MB`],
        ],
      )}\n\n`,
    );
    const worst = Math.max(...rounds.map((r) => r.max));
    process.stdout.write(
      `target: ${SUBSCRIBERS} subscribers all have the new revision within ${TARGET_MS} ms of the apply: ${worst <= TARGET_MS ? 'met' : 'NOT met'} (worst round ${worst.toFixed(1)} ms)\n`,
    );
  } finally {
    await subs.stop();
    await cp.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
