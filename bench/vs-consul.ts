/**
 * `npm run bench -- vs-consul [-- --flips N --seconds N --concurrency N --skip-issuance --no-readme]`:
 * our mesh side by side with Consul's service mesh (Connect), on the same
 * catalog, in one run (issue 16).
 * - A Consul dev server (127.0.0.1) holds the catalog: 1,000 services x 10
 *   instances, each with our mesh meta and a Connect sidecar instance; a
 *   plain Consul client agent (127.0.0.2) joins it and serves xDS on its gRPC
 *   port.
 * - Ours: `mesh-agent run` (built dist, joined data dir, real control plane,
 *   data plane on, provisioned Envoy at concurrency 1) against the server,
 *   with `bench-caller` and its 200 upstreams.
 * - Consul's: `bench-caller` registered on the client agent with a sidecar
 *   listing the same 200 upstreams; its Envoy (same binary, concurrency 1)
 *   bootstrapped by `consul connect envoy -sidecar-for bench-caller -bootstrap`.
 * Figures: FLIPS health flips (one txn sets an instance's check and its
 * sidecar's), each timed from just before the write until each Envoy's admin
 * API shows exactly that endpoint gone or back; bytes per flip from each
 * Envoy's rx bytes on its xDS cluster; Envoy start -> ready; VmRSS of our
 * agent and of the Consul client agent; NACKs (must be 0); then the
 * certificate issuance comparison (bench/lib/vs-consul-issuance.ts).
 * Tables are printed and written into bench/README.md between the markers.
 */
import { readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { repoRoot } from '../scripts/repo-root.js';
import { freePorts } from '../test/support/ports.js';
import { tools } from '../test/support/tools.js';
import { adsClusterName, clustersByService, edsClusters, edsNames } from './lib/envoy-dump.js';
import { rssMb } from './lib/stats.js';
import {
  type BenchEnvoy,
  type FlipTimes,
  flipOnce,
  fullDump,
  initFetchTimeouts,
  nackCount,
  type Ready,
  rxBytes,
  waitEnvoyReady,
} from './lib/vs-consul-envoys.js';
import { compareIssuance } from './lib/vs-consul-issuance.js';
import { startOurs } from './lib/vs-consul-ours.js';
import { registerSidecarWorkload, startConsulEnvoy, startConsulPair } from './lib/vs-consul-peers.js';
import {
  type IssuanceVerdict,
  replaceSection,
  reportSection,
  type SideFigures,
  targets,
  type VsConsulFigures,
} from './lib/vs-consul-report.js';
import {
  checkOp,
  freePortRange,
  INSTANCES,
  registerCatalog,
  SERVICES,
  sidecarCheckOp,
  txn,
  UPSTREAMS,
  upstreamNames,
} from './lib/xds-fixtures.js';

const USAGE = `Usage: npm run bench -- vs-consul [-- options]

Our mesh and Consul Connect on the same catalog (${SERVICES} services x ${INSTANCES} instances,
${UPSTREAMS} upstreams), in one run; tables printed and written into bench/README.md.

Options:
  --flips N          health flips (critical, then passing again), even (default 100)
  --seconds N        measured seconds per issuance row (default 5)
  --concurrency N    issuance callers, the same for both systems (default 64)
  --poll-ms N        pause between two admin polls of one Envoy during a flip (default 2)
  --skip-issuance    leave out the certificate comparison (quick runs)
  --no-readme        print only; do not rewrite bench/README.md
  -h, --help         this text
`;

function usage(message: string): never {
  process.stderr.write(`MESH_E_USAGE: ${message}\n\n${USAGE}`);
  process.exit(2);
}

function positive(name: string, text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) usage(`--${name} takes a positive whole number, not ${JSON.stringify(text)}`);
  return n;
}

let values: Record<string, string | boolean | undefined>;
try {
  // argv[2] is the benchmark's name (scripts/bench-main.ts).
  ({ values } = parseArgs({
    args: process.argv.slice(3),
    options: {
      flips: { type: 'string', default: '100' },
      seconds: { type: 'string', default: '5' },
      concurrency: { type: 'string', default: '64' },
      'poll-ms': { type: 'string', default: '2' },
      'skip-issuance': { type: 'boolean', default: false },
      'no-readme': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  }));
} catch (err) {
  usage((err as Error).message);
}
if (values.help === true) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const FLIPS = positive('flips', String(values.flips));
if (FLIPS % 2 !== 0) usage('--flips must be even (each instance goes critical, then passing again)');
const SECONDS = positive('seconds', String(values.seconds));
const CONCURRENCY = positive('concurrency', String(values.concurrency));
const POLL_MS = positive('poll-ms', String(values['poll-ms']));
const CALLER = 'bench-caller';
const PAUSE_MS = 100;
/** Both agents' VmRSS is read this often over the flips, and for RSS_AFTER_MS after the last (which also lets its bytes arrive). */
const RSS_SAMPLE_MS = 500;
const RSS_AFTER_MS = 5_000;

const log = (line: string) => process.stdout.write(`vs-consul: ${line}\n`);
const load = () => os.loadavg()[0]?.toFixed(1) ?? '?';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// Everything started is stopped by its PID, newest first, on success, failure, Ctrl-C or SIGTERM.
const stops: Array<() => Promise<void>> = [];
const once = (fn: () => Promise<void>) => {
  let done: Promise<void> | undefined;
  return () => {
    done ??= fn();
    return done;
  };
};
const track = (fn: () => Promise<void>) => {
  const stop = once(fn);
  stops.push(stop);
  return stop;
};
let cleaning: Promise<void> | undefined;
const cleanup = () => {
  cleaning ??= (async () => {
    for (const stop of stops.reverse()) await stop().catch((err) => process.stderr.write(`cleanup: ${(err as Error).message}\n`));
  })();
  return cleaning;
};
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    process.stderr.write(`vs-consul: ${signal}: stopping everything\n`);
    void cleanup().then(() => process.exit(130));
  });
}

/**
 * Starts a blocking query on the service that returns once its index moves; `returned` resolves with
 * performance.now() then. (An object, not a promise of a promise: `await` would wait for the inner one.)
 */
async function rawBlockingQuery(base: string, service: string): Promise<{ returned: Promise<number> }> {
  const first = await fetch(`${base}/v1/health/service/${service}`);
  await first.arrayBuffer();
  const index = first.headers.get('X-Consul-Index');
  const returned = fetch(`${base}/v1/health/service/${service}?index=${index}&wait=30s`).then(async (r) => {
    await r.arrayBuffer();
    return performance.now();
  });
  return { returned };
}

async function run(): Promise<void> {
  const loads = [load()];
  const { consul, envoy } = await tools();
  const pair = await startConsulPair(consul.path, track);
  const serverBase = `http://${pair.server.httpAddr}`;
  log(`Consul server ${pair.server.httpAddr} (pid ${pair.server.pid}), client agent ${pair.client.httpAddr} (pid ${pair.client.pid})`);
  const t0 = performance.now();
  await registerCatalog(serverBase, { sidecars: true });
  log(
    `${SERVICES} services x ${INSTANCES} instances, each with a sidecar, registered in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );

  const oursFirst = await freePortRange(UPSTREAMS, 30_000);
  const consulFirst = await freePortRange(UPSTREAMS, oursFirst + UPSTREAMS);
  const upstreams = (first: number) => upstreamNames.map((service, i) => ({ service, localPort: first + i }));

  // Ours first, alone on the machine until ready; then Consul's.
  log('ours: starting mesh-agent run and its Envoy...');
  const ours = await startOurs({
    consulAddr: pair.server.httpAddr,
    envoyBinary: envoy.path,
    caller: CALLER,
    upstreams: upstreams(oursFirst),
    track,
  });
  const oursEnvoy: BenchEnvoy = {
    name: 'ours',
    adminUrl: ours.adminUrl,
    pid: () => ours.envoyPid(),
    // Stat names have ':' turned into '_': cluster outbound:<service>@<caller>.
    readyStat: '^cluster\\.outbound_svc-[0-9]+@.*\\.membership_healthy$',
  };
  const oursReady = await waitEnvoyReady(oursEnvoy, { clusters: UPSTREAMS, endpoints: INSTANCES, fatal: ours.fatal });
  await ours.healthy();
  log(`ours: ready ${oursReady.readyMs.toFixed(0)} ms after its Envoy started`);

  log("Consul's: registering the sidecar and starting its Envoy...");
  const [appPort, sidecarPort, consulAdmin] = (await freePorts(3)) as [number, number, number];
  const registeredAt = Date.now();
  await registerSidecarWorkload(pair.client.httpAddr, { id: CALLER, appPort, sidecarPort, upstreams: upstreams(consulFirst) });
  const ce = await startConsulEnvoy({
    consulBinary: consul.path,
    envoyBinary: envoy.path,
    client: pair.client,
    sidecarFor: CALLER,
    adminPort: consulAdmin,
    track,
  });
  const consulEnvoy: BenchEnvoy = {
    name: 'Consul',
    adminUrl: ce.adminUrl,
    pid: async () => ce.child.pid,
    readyStat: '^cluster\\.svc-[0-9]+\\..*\\.membership_healthy$',
  };
  const consulReady = await waitEnvoyReady(consulEnvoy, {
    clusters: UPSTREAMS,
    endpoints: INSTANCES,
    fatal: () => (ce.child.exited() ? `Consul's Envoy exited:\n${ce.child.output().slice(-3000)}` : undefined),
  });
  log(`Consul's: ready ${consulReady.readyMs.toFixed(0)} ms after its Envoy started`);

  // Cluster names and the xDS cluster, read the same way from both config dumps.
  const oursDump = await fullDump(oursEnvoy);
  const consulDump = await fullDump(consulEnvoy);
  const oursAds = adsClusterName(oursDump);
  const consulAds = adsClusterName(consulDump);
  if (oursAds === undefined || consulAds === undefined)
    throw new Error(`no ADS cluster in a bootstrap: ours ${oursAds}, Consul's ${consulAds}`);
  const oursClusters = clustersByService(upstreamNames, edsNames(oursDump), (s, n) => n === `outbound:${s}`);
  const consulClusters = clustersByService(upstreamNames, edsNames(consulDump), (s, n) => n.startsWith(`${s}.`));
  /** EDS resource name -> its cluster's name (ours: outbound:<service> -> outbound:<service>@<caller>; Consul's: the same). */
  const clusterOf = (dump: typeof oursDump) => new Map(edsClusters(dump).map((c) => [c.eds, c.cluster]));
  const oursCds = clusterOf(oursDump);
  const consulCds = clusterOf(consulDump);
  log(
    `xDS clusters: ours ${oursAds}, Consul's ${consulAds}; Consul names upstream clusters like ${consulClusters.get(upstreamNames[0] as string)}`,
  );

  const timeouts = { ours: await initFetchTimeouts(oursEnvoy), consul: await initFetchTimeouts(consulEnvoy) };
  await sleep(1000);
  loads.push(load());
  const rxBefore = { ours: await rxBytes(oursEnvoy, oursAds), consul: await rxBytes(consulEnvoy, consulAds) };
  const delays = { ours: [] as number[], consul: [] as number[] };
  const polls = { ours: [] as number[], consul: [] as number[] };
  const applied = { ours: [] as number[], consul: [] as number[] };
  const rawDelays: number[] = [];
  /** Per flip, from our /status after both Envoys showed it: write -> new view in the agent, -> pushed, -> Envoy's ACK. */
  const oursSteps = { arrived: [] as number[], started: [] as number[], pushed: [] as number[], acked: [] as number[] };
  // Both agents' VmRSS every 0.5 s from the first flip until 5 s after the last (the memory figure is their median).
  const rssSamples = { ours: [] as number[], consul: [] as number[] };
  const rssTimer = setInterval(() => {
    try {
      const sample = { ours: rssMb(ours.agent.pid), consul: rssMb(pair.client.pid) };
      rssSamples.ours.push(sample.ours);
      rssSamples.consul.push(sample.consul);
    } catch {
      // A process gone mid-run: no sample (the flips then fail the run, naming what is missing).
    }
  }, RSS_SAMPLE_MS);
  try {
    for (let k = 0; k < FLIPS; k++) {
      const s = Math.floor(k / 2) * 4;
      const service = upstreamNames[s] as string;
      const node = Math.floor(k / 2) % INSTANCES;
      const status = k % 2 === 0 ? 'critical' : 'passing';
      // Consul's own share: a raw blocking query on the service at the server, returning when it has the write.
      const raw = await rawBlockingQuery(serverBase, service);
      let t0 = 0;
      let wall0 = 0;
      const d = await flipOnce({
        node,
        sides: [
          {
            envoy: oursEnvoy,
            cluster: oursClusters.get(service) as string,
            statCluster: oursCds.get(oursClusters.get(service) as string) as string,
            polls: polls.ours,
          },
          {
            envoy: consulEnvoy,
            cluster: consulClusters.get(service) as string,
            statCluster: consulCds.get(consulClusters.get(service) as string) as string,
            polls: polls.consul,
          },
        ],
        instances: INSTANCES,
        status,
        pollMs: POLL_MS,
        write: (at) => {
          t0 = at;
          wall0 = Date.now();
          return txn(serverBase, [checkOp(node, service, status), sidecarCheckOp(node, service, status)]);
        },
      });
      rawDelays.push((await raw.returned) - t0);
      const change = await ours.lastChange();
      if (change?.pushedMs === undefined || change.ackedMs === undefined)
        throw new Error(`flip ${k}: our /status xds.lastChange has no push or ACK: ${JSON.stringify(change)}`);
      const arrived = Date.parse(change.at) - wall0;
      oursSteps.arrived.push(arrived);
      oursSteps.started.push(arrived + (change.startedMs ?? 0));
      oursSteps.pushed.push(arrived + change.pushedMs);
      oursSteps.acked.push(arrived + change.ackedMs);
      const [o, c] = d as [FlipTimes, FlipTimes];
      delays.ours.push(o.shown);
      delays.consul.push(c.shown);
      applied.ours.push(o.applied);
      applied.consul.push(c.applied);
      if ((k + 1) % 20 === 0) log(`${k + 1} flips`);
      await sleep(PAUSE_MS);
    }
    await sleep(RSS_AFTER_MS);
  } finally {
    // Also when a flip fails the run: a live interval would keep the process from exiting.
    clearInterval(rssTimer);
  }
  const rxAfter = { ours: await rxBytes(oursEnvoy, oursAds), consul: await rxBytes(consulEnvoy, consulAds) };
  const nacks = { ours: await nackCount(oursEnvoy), consul: await nackCount(consulEnvoy) };
  const side = (which: 'ours' | 'consul', ready: Ready, agentPid: number, setupAt: number): SideFigures => ({
    delays: delays[which],
    applied: applied[which],
    polls: polls[which],
    bytesPerChange: (rxAfter[which] - rxBefore[which]) / FLIPS,
    // Read once both are ready and settled (a read at the moment of ready came out low in one run: 189 KB against 314 KB).
    bytesUntilReady: rxBefore[which],
    readyMs: ready.readyMs,
    setupToReadyMs: ready.readyAt - setupAt,
    initFetchTimeouts: timeouts[which],
    agentRssMb: rssMb(agentPid),
    agentRssSamples: rssSamples[which],
    envoyRssMb: rssMb(ready.pid),
    rejected: nacks[which].rejected,
    rejectedStats: nacks[which].stats,
  });
  loads.push(load());
  const figures: VsConsulFigures = {
    flips: FLIPS,
    pollMs: POLL_MS,
    upstreams: UPSTREAMS,
    instances: INSTANCES,
    services: SERVICES,
    ours: side('ours', oursReady, ours.agent.pid, ours.startedAt),
    consul: side('consul', consulReady, pair.client.pid, registeredAt),
    consulServerRssMb: rssMb(pair.server.pid),
    rawBlockingQuery: rawDelays,
    oursSteps,
    load: loads,
  };

  // The Envoys and our agent are done: stop them before the issuance load so they take no CPU from it.
  await ours.stop();
  await ce.stop();
  let issuance: string[] = [];
  let verdict: IssuanceVerdict | undefined;
  let issuanceNote = 'not measured in this run (`--skip-issuance`)';
  if (values['skip-issuance'] !== true) {
    log(`certificates: ${CONCURRENCY} callers, ${SECONDS} s per row...`);
    issuanceNote = 'the issuance module returned no table';
    const compared = await compareIssuance({
      consulHttpAddr: pair.client.httpAddr,
      concurrency: CONCURRENCY,
      seconds: SECONDS,
      log,
      consulPids: [pair.client.pid, pair.server.pid],
      track,
    });
    issuance = compared.tables;
    verdict = { ratio: compared.ratio, met: compared.met };
  }

  const command = `npm run bench -- vs-consul${process.argv.length > 3 ? ` -- ${process.argv.slice(3).join(' ')}` : ''}`;
  const date = `${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC`;
  const section = reportSection(figures, { command, date, issuance, issuanceNote, verdict });
  process.stdout.write(`\n${section}\n\n`);
  const rejected = figures.ours.rejected + figures.consul.rejected;
  if (rejected > 0 || figures.ours.rejectedStats === 0 || figures.consul.rejectedStats === 0) {
    throw new Error(`NACKs: ours ${figures.ours.rejected}, Consul's ${figures.consul.rejected} (update_rejected must all be 0 and exist)`);
  }
  if (values['no-readme'] !== true) {
    const file = path.join(repoRoot(), 'bench', 'README.md');
    await writeFile(file, replaceSection(await readFile(file, 'utf8'), section));
    log(`written into ${file}`);
  }
  const missed = targets(figures, verdict).filter((t) => !t.met).length;
  log(missed === 0 ? 'all targets met' : `${missed} target(s) NOT met`);
}

try {
  await run();
} catch (err) {
  process.stderr.write(`vs-consul: FAILED: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
} finally {
  await cleanup();
}
