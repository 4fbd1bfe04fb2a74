/**
 * `npm run bench -- tproxy [-- --seconds N --concurrency N --connects N]`:
 * what capture costs between two network-namespace hosts (the world of the
 * transparent-proxy tests, test/support/tproxy-world.ts; needs root).
 * web's host a calls api's app on host b by address, `http://<b>:8080/`:
 * - direct: no agent runs, no rule is installed: app to app over the veth segment;
 * - captured: both hosts run `mesh-agent run` with transparentProxy on (backend
 *   auto, Envoy concurrency 1, as uid 15337): a's outbound capture, a's Envoy,
 *   mTLS to b's mesh port, b's Envoy, api. Every answer must carry web's SPIFFE ID.
 * Figures: requests/s with CONCURRENCY callers on kept-alive connections for
 * SECONDS, and the latency of a request on a new connection (connection setup
 * plus one request), CONNECTS of them one after the other; then the ratio
 * captured / direct. Then failurePolicy open, timed (`--lift-runs N`, default 3):
 * b's Envoy killed -> c's plaintext request reaches api directly (the issue's
 * 2 s), and Envoy back -> c refused again.
 */
import { parseArgs } from 'node:util';
import { privilegedSkipReason } from '../test/support/netns.js';
import { dist } from '../test/support/netns-peers.js';
import { APP_PORT, echoIn, killPid, spiffeId, startTproxyWorld, type TproxyWorld, xfccUri } from '../test/support/tproxy-world.js';
import { waitFor } from '../test/support/wait.js';
import { pct } from './lib/stats.js';
import { formatTable } from './lib/table.js';

const { values } = parseArgs({
  // argv[2] is the benchmark's name (scripts/bench-main.ts).
  args: process.argv.slice(3),
  options: {
    seconds: { type: 'string', default: '5' },
    concurrency: { type: 'string', default: '8' },
    connects: { type: 'string', default: '300' },
    'lift-runs': { type: 'string', default: '3' },
  },
});
const seconds = Number(values.seconds);
const concurrency = Number(values.concurrency);
const connects = Number(values.connects);
const liftRuns = Number(values['lift-runs']);

const notRoot = await privilegedSkipReason();
if (notRoot !== undefined) {
  process.stderr.write(`bench tproxy: ${notRoot}\n`);
  process.exit(2);
}

interface Load {
  rps: number;
  requests: number;
  errors: number;
  connectMs: number[];
}

async function load(w: TproxyWorld): Promise<Load> {
  const url = `http://${w.b.address}:${APP_PORT}/bench`;
  const r = await w.a.exec(
    process.execPath,
    [dist('bench', 'lib', 'http-load-main.js'), url, String(seconds), String(concurrency), String(connects)],
    {
      timeoutMs: seconds * 1000 + connects * 5_000 + 30_000,
    },
  );
  if (r.code !== 0) throw new Error(`load in a exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as Load;
}

/**
 * failurePolicy open, timed: b's agent restarted with it (Envoy restarts 3 s after
 * a crash); per run, kill b's Envoy and time until c's plaintext request reaches
 * api directly (capture lifted), then until c is refused again (capture back).
 */
async function failOpenTimes(w: TproxyWorld, runs: number): Promise<{ lifted: number[]; restored: number[] }> {
  await w.api.stop();
  await w.api.start({ failurePolicy: 'open' }, { restartBackoffInitial: '3s', restartBackoffMax: '3s' });
  const url = `http://${w.b.address}:${APP_PORT}/lift`;
  const reached = async () => (await echoIn(w.c, url, 1))?.app === 'api';
  const installed = async () => ((await w.api.status()).transparentProxy?.state === 'installed' ? true : undefined);
  await waitFor(installed, { timeoutMs: 60_000, what: 'capture installed on b (failurePolicy open)' });
  const lifted: number[] = [];
  const restored: number[] = [];
  for (let i = 0; i < runs; i++) {
    await waitFor(async () => (!(await reached()) ? true : undefined), {
      timeoutMs: 60_000,
      intervalMs: 20,
      what: 'c refused (capture on)',
    });
    const pid = await waitFor(
      async () => {
        const p = (await w.api.status()).envoy?.pid;
        return typeof p === 'number' ? p : undefined;
      },
      { what: "b's Envoy pid" },
    );
    const killedAt = performance.now();
    killPid(pid);
    await waitFor(async () => ((await reached()) ? true : undefined), {
      timeoutMs: 10_000,
      intervalMs: 20,
      what: 'c to reach api directly',
    });
    lifted.push(performance.now() - killedAt);
    const liftedAt = performance.now();
    await waitFor(async () => (!(await reached()) ? true : undefined), { timeoutMs: 30_000, intervalMs: 20, what: 'capture back' });
    restored.push(performance.now() - liftedAt);
  }
  return { lifted, restored };
}

const w = await startTproxyWorld({ prefix: 'mesh-bench-tproxy-' });
try {
  const direct = await load(w);
  process.stdout.write(`tproxy: direct ${Math.round(direct.rps)} requests/s; starting both agents with capture\n`);
  await w.api.start();
  await w.web.start();
  for (const m of [w.api, w.web])
    await waitFor(async () => ((await m.status()).transparentProxy?.state === 'installed' ? true : undefined), {
      timeoutMs: 60_000,
      what: `capture installed on ${m.host.name}`,
    });
  const web = spiffeId('web');
  await waitFor(
    async () => {
      const r = await echoIn(w.a, `http://${w.b.address}:${APP_PORT}/warm`);
      return r !== undefined && xfccUri(r.xfcc) === web ? true : undefined;
    },
    { timeoutMs: 60_000, what: 'web -> api through both Envoys' },
  );
  const backend = (await w.web.status()).transparentProxy?.backend ?? '?';
  const captured = await load(w);
  const lift = await failOpenTimes(w, liftRuns);
  const ms = (v: number) => Number(v.toFixed(2));
  const ratio = (c: number, d: number) => `${(c / d).toFixed(2)}x`;
  const rows = [
    [
      `requests/s (${concurrency} callers, kept-alive, ${seconds} s)`,
      Math.round(direct.rps),
      Math.round(captured.rps),
      ratio(captured.rps, direct.rps),
    ],
    ...[50, 99].map((p) => [
      `new connection + request, p${p} (ms, ${connects})`,
      ms(pct(direct.connectMs, p)),
      ms(pct(captured.connectMs, p)),
      ratio(pct(captured.connectMs, p), pct(direct.connectMs, p)),
    ]),
    ['errors', direct.errors, captured.errors, '-'],
  ];
  const liftRows = [
    [
      `Envoy killed -> c reaches api directly (${lift.lifted.length} runs)`,
      ms(pct(lift.lifted, 50)),
      ms(Math.max(...lift.lifted)),
      '< 2,000',
    ],
    [`lifted -> c refused again (Envoy restarted, capture back)`, ms(pct(lift.restored, 50)), ms(Math.max(...lift.restored)), '-'],
  ];
  process.stdout.write(
    `tproxy: a -> b by address, direct vs captured (${backend}, both Envoys, mTLS), Envoy concurrency 1\n\n${formatTable(
      ['figure', 'direct', 'captured', 'captured / direct'],
      rows,
    )}\n\nfailurePolicy open on b (Envoy restarts 3 s after its death; polled every ~30 ms with curl in c):\n\n${formatTable(
      ['figure (ms)', 'p50', 'max', 'target'],
      liftRows,
    )}\n`,
  );
} finally {
  await w.stop();
}
