/**
 * bench/xds: 1,000 services x 10 endpoints in the catalog, 200 upstreams on
 * the agent.
 *   1. In process: time to build a full snapshot for 200 upstreams x 10
 *      instances (buildModel + buildSnapshot + checkSnapshot +
 *      SnapshotEncoder.serve, real certificates; check and encode are what
 *      SnapshotCache.setSnapshot runs), cold and after one endpoint changed
 *      (warm memos and encode cache, the unchanged services' views kept, as
 *      the agent does).
 *   2. End to end, once with delta xDS and once with state of the world: a
 *      real Consul dev agent, a real control plane, the real `mesh-agent run`
 *      child process with the data plane on and the provisioned Envoy. 100
 *      health changes written to Consul (txn); each is timed from just before
 *      the write until Envoy's admin API shows the changed endpoints of that
 *      cluster. Bytes pushed per change come from the agent's /status xDS
 *      counters; RSS from /proc.
 * Targets: Consul write -> Envoy applied p99 < 250 ms; agent RSS < 120 MB.
 * Run: npm run bench -- xds
 */

import type { ChangeTiming } from '../agent/dataplane/change-timing.js';
import { type CatalogView, makeView, sameInstances } from '../agent/discovery/catalog-view.js';
import { buildModel } from '../agent/model/build-model.js';
import { ModelMemo } from '../agent/model/model-memo.js';
import type { Workload } from '../agent/workloads/workload.js';
import { BuildMemo } from '../agent/xds/build-memo.js';
import { type ServedSnapshot, SnapshotEncoder } from '../agent/xds/cache/served-snapshot.js';
import { checkSnapshot } from '../agent/xds/check-snapshot.js';
import type { PushCounters } from '../agent/xds/server/ads-telemetry.js';
import type { Identities } from '../agent/xds/snapshot.js';
import { buildSnapshot } from '../agent/xds/snapshot-build.js';
import { agentStatus, startAgentProcess } from '../test/support/agent-process.js';
import { joinSource, startTestControlPlane } from '../test/support/controlplane.js';
import { parseStats } from '../test/support/envoy.js';
import { meshHost } from '../test/support/mesh-world.js';
import { freePorts } from '../test/support/ports.js';
import { createTestCa } from '../test/support/test-ca.js';
import { tools } from '../test/support/tools.js';
import { httpGet, waitFor } from '../test/support/wait.js';
import { pct, peakRssMb, rssMb, rssParts } from './lib/stats.js';
import { formatTable } from './lib/table.js';
import {
  benchView,
  CONSUL_MAX_CONNS_PER_CLIENT,
  checkOp,
  freePortRange,
  INSTANCES,
  registerCatalog,
  SERVICES,
  startBenchConsul,
  TRUST_DOMAIN,
  txn,
  UPSTREAMS,
  upstreamNames,
} from './lib/xds-fixtures.js';

const BUILD_RUNS = 50;
const CHANGES = 100;
const PAUSE_MS = 50;
const POLL_MS = 2;
const APPLY_TIMEOUT_MS = 10_000;
const P99_TARGET_MS = 250;
const RSS_TARGET_MB = 120;
const CALLER = 'bench-caller';
const CALLER_ID = `spiffe://${TRUST_DOMAIN}/ns/default/sa/${CALLER}`;

type Api = 'delta' | 'sotw';
type Row = [string, string, string, string];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ms = (v: number) => `${v.toFixed(v >= 100 ? 0 : 1)} ms`;
const kb = (bytes: number) => (bytes >= 1024 * 1024 ? `${(bytes / 1_048_576).toFixed(2)} MB` : `${(bytes / 1024).toFixed(1)} KB`);
const info = (figure: string, value: string): Row => [figure, value, '-', '-'];
const target = (figure: string, value: number, limit: number, unit: string): Row => [
  figure,
  `${value.toFixed(1)} ${unit}`,
  `< ${limit} ${unit}`,
  value < limit ? 'met' : 'NOT met',
];

function servedBytes(served: ServedSnapshot): number {
  let total = 0;
  for (const byName of Object.values(served.byKind)) for (const r of byName.values()) total += r.any.value.length;
  return total;
}

/** Part 1: the snapshot build of the agent, in process. */
async function snapshotBuild(): Promise<{ rows: Row[]; fullBytes: number; resources: number }> {
  const upstreams = upstreamNames.map((service, i) => ({ service, localPort: 30_000 + i }));
  const workload: Workload = {
    file: `${CALLER}.json`,
    name: CALLER,
    port: 9000,
    meshPort: 19000,
    protocol: 'http',
    namespace: 'default',
    serviceAccount: CALLER,
    spiffeId: CALLER_ID,
    tags: [],
    meta: {},
    weight: 1,
    check: undefined,
    upstreams: upstreams.map((u) => ({ ...u, namespace: 'default' })),
  };
  const ca = await createTestCa(TRUST_DOMAIN);
  const cert = ca.issue(CALLER_ID);
  const identities: Identities = {
    certs: new Map([[CALLER_ID, { chainPem: cert.chainPem, keyPem: cert.keyPem }]]),
    bundlePem: ca.bundlePem,
  };
  const svids = new Set([CALLER_ID]);

  // The encoder and the memos live as long as the agent's data plane: cold = all new. As the catalog watcher
  // does, a service whose instances did not change keeps its ServiceView object from the previous view.
  const build = (
    encoder: SnapshotEncoder,
    down: ReadonlySet<string>,
    version: number,
    memo = new BuildMemo(),
    models = new ModelMemo(),
    previous?: CatalogView,
  ) => {
    const fresh = Object.values(benchView(version, upstreamNames, down).services);
    const view = makeView(
      version,
      fresh.map((s) => {
        const before = previous?.services[s.name];
        return before !== undefined && sameInstances(before.instances, s.instances) ? before : s;
      }),
    );
    const t1 = performance.now();
    const built = buildModel({ nodeName: 'bench-node', trustDomain: TRUST_DOMAIN, workloads: [workload], view, svids, memo: models });
    const snapshot = buildSnapshot(built.model, identities, memo);
    const problems = checkSnapshot(snapshot);
    if (problems.length > 0) throw new Error(`snapshot problems: ${problems.join('; ')}`);
    const t2 = performance.now();
    const served = encoder.serve(snapshot);
    const t3 = performance.now();
    return { served, view, total: t3 - t1, model: t2 - t1, encode: t3 - t2 };
  };

  // Warm up the JIT a little so the first measured run is not the interpreter's.
  for (let i = 0; i < 5; i++) build(new SnapshotEncoder(), new Set(), i);

  const cold = { total: [] as number[], model: [] as number[], encode: [] as number[] };
  let served: ServedSnapshot | undefined;
  for (let i = 0; i < BUILD_RUNS; i++) {
    const r = build(new SnapshotEncoder(), new Set(), i);
    cold.total.push(r.total);
    cold.model.push(r.model);
    cold.encode.push(r.encode);
    served = r.served;
  }
  const encoder = new SnapshotEncoder();
  const memo = new BuildMemo();
  const models = new ModelMemo();
  let view = build(encoder, new Set(), 0, memo, models).view;
  const warm = { total: [] as number[], model: [] as number[], encode: [] as number[] };
  for (let i = 0; i < BUILD_RUNS; i++) {
    // One endpoint leaves (even runs) or comes back (odd runs) relative to the previous snapshot.
    const down = i % 2 === 0 ? new Set([`${upstreamNames[(i / 2) % UPSTREAMS]}-0`]) : new Set<string>();
    const r = build(encoder, down, i + 1, memo, models, view);
    view = r.view;
    warm.total.push(r.total);
    warm.model.push(r.model);
    warm.encode.push(r.encode);
  }
  const fmt = (v: number[]) => `p50 ${ms(pct(v, 50))}, p99 ${ms(pct(v, 99))}`;
  const s = served as ServedSnapshot;
  const resources = Object.values(s.byKind).reduce((n, m) => n + m.size, 0);
  return {
    fullBytes: servedBytes(s),
    resources,
    rows: [
      info(`snapshot build, cold (${BUILD_RUNS} runs): total`, fmt(cold.total)),
      info('  of which model + snapshot + check', fmt(cold.model)),
      info('  of which encode (empty cache)', fmt(cold.encode)),
      info(`snapshot rebuild after 1 endpoint change (${BUILD_RUNS} runs): total`, fmt(warm.total)),
      info('  of which model + snapshot + check', fmt(warm.model)),
      info('  of which encode (warm cache)', fmt(warm.encode)),
      info('full snapshot: resources / encoded bytes', `${resources} / ${kb(servedBytes(s))}`),
    ],
  };
}

interface EndpointConfig {
  cluster_name?: string;
  endpoints?: Array<{ lb_endpoints?: unknown[] }>;
}

interface AgentStatusDoc {
  healthy: boolean;
  problems: string[];
  envoy?: { state: string; pid?: number };
  xds?: { counters: Record<Api, PushCounters>; streams: Array<{ api: string }>; lastChange?: Omit<ChangeTiming, 'at'> & { at: string } };
  agent?: { memoryMb: { heapUsed: number; heapTotal: number; external: number } };
}

interface E2eResult {
  api: Api;
  readyMs: number;
  initial: PushCounters;
  delays: number[];
  perChange: { bytes: number; responses: number; resources: number };
  agentRss: number;
  /** VmRSS once ready, before the changes. */
  rssReady: number;
  /** VmHWM: the agent's peak RSS. */
  agentPeak: number;
  /** Consul write -> a raw blocking query on the service returns (Consul's share of the delay). */
  consulDelays: number[];
  /** Per change, from the agent's /status xds.lastChange: where the time went. */
  steps: { arrived: number[]; started: number[]; pushed: number[]; acked: number[] };
  /** Durations of the admin API polls (the measurement's resolution). */
  polls: number[];
  envoyRss: number | undefined;
  /** RssAnon / RssFile after the changes, MB. */
  agentRssParts: { anon: number; file: number };
  heap: string;
}

/** Part 2: the real agent + Envoy with one API. */
async function endToEnd(
  api: Api,
  consulBase: string,
  consulAddr: string,
  cp: Awaited<ReturnType<typeof startTestControlPlane>>,
  envoyBinary: string,
): Promise<E2eResult> {
  const cleanups: Array<() => Promise<unknown>> = [];
  try {
    const firstLocal = await freePortRange(UPSTREAMS, 21_000);
    const [appPort, meshPort, adminPort] = (await freePorts(3)) as [number, number, number];
    const admin = `http://127.0.0.1:${adminPort}`;
    const { fx } = await meshHost(
      { teardown: (fn) => cleanups.push(async () => fn()) },
      {
        join: joinSource(cp),
        consulAddr,
        nodeName: `bench-${api}`,
        allow: [CALLER_ID],
        // The Consul watch settings are the agent's defaults (agent/config/schema.ts), not the tests' fast loops: with
        // the tests' 10 s wait, 200 blocking queries time out and are answered again 20 times a second.
        config: {
          controlPlane: { address: cp.cp.address, caBundle: '/dev/null' },
          consul: { watchWait: '60s', syncInterval: '5s' },
        },
        envoy: { binary: envoyBinary, adminPort, api },
        workloads: {
          [`${CALLER}.json`]: JSON.stringify({
            name: CALLER,
            port: appPort,
            meshPort,
            protocol: 'http',
            upstreams: upstreamNames.map((service, i) => ({ service, localPort: firstLocal + i })),
          }),
        },
      },
    );

    const started = performance.now();
    const agent = startAgentProcess(fx.configFile);
    cleanups.push(() => agent.stop());
    const fail = (what: string, err: unknown, status?: AgentStatusDoc) => {
      const summary =
        status === undefined
          ? 'none'
          : JSON.stringify(
              { healthy: status.healthy, problems: status.problems, envoy: status.envoy, counters: status.xds?.counters },
              null,
              2,
            );
      return new Error(
        `${api}: ${what}: ${(err as Error).message}\n--- last /status (summary) ---\n${summary.slice(0, 4000)}\n` +
          `--- agent output (tail) ---\n${agent.output().slice(-6000)}`,
      );
    };
    const fatal = () => (agent.exited() ? 'the agent exited' : undefined);

    // Ready: /status healthy and Envoy has every outbound cluster with all its endpoints.
    let lastStatus: AgentStatusDoc | undefined;
    const membership = async (filter: string): Promise<Map<string, number>> => {
      const { status, body } = await httpGet(`${admin}/stats?filter=${encodeURIComponent(filter)}`);
      if (status !== 200) throw new Error(`envoy admin /stats: HTTP ${status}`);
      return parseStats(body);
    };
    try {
      await waitFor(
        async () => {
          lastStatus = await agentStatus<AgentStatusDoc>(fx.statusAddr);
          if (!lastStatus.healthy || lastStatus.envoy?.state !== 'running') return undefined;
          const stats = await membership('^cluster\\.outbound.*\\.membership_total$');
          const full = [...stats.values()].filter((v) => v === INSTANCES).length;
          if (full < UPSTREAMS) return undefined;
          return true;
        },
        {
          timeoutMs: 120_000,
          intervalMs: 200,
          what: `the agent healthy and Envoy with ${UPSTREAMS} outbound clusters of ${INSTANCES}`,
          fatal,
        },
      );
    } catch (err) {
      throw fail('not ready', err, lastStatus);
    }
    const readyMs = performance.now() - started;
    await sleep(500);
    const before = await agentStatus<AgentStatusDoc>(fx.statusAddr);
    const initial = before.xds?.counters[api];
    if (initial === undefined) throw fail('no xds counters in /status', new Error('missing'), before);

    // The endpoints Envoy's cluster holds, from the EDS config dump of that one cluster: about
    // 1 ms of Envoy's main thread, where a /stats?filter= scan of every stat takes 25+ ms.
    const endpointsInEnvoy = async (service: string): Promise<number | undefined> => {
      const cluster = `outbound:${service}`;
      const { status, body } = await httpGet(
        `${admin}/config_dump?include_eds&resource=dynamic_endpoint_configs&name_regex=${encodeURIComponent(`^${cluster}$`)}`,
      );
      if (status !== 200) throw new Error(`envoy admin /config_dump: HTTP ${status}`);
      const dump = JSON.parse(body) as { configs?: Array<{ endpoint_config?: EndpointConfig }> };
      const cla = dump.configs?.find((c) => c.endpoint_config?.cluster_name === cluster)?.endpoint_config;
      return cla === undefined ? undefined : (cla.endpoints ?? []).reduce((n, e) => n + (e.lb_endpoints?.length ?? 0), 0);
    };

    const rssReady = rssMb(agent.pid);
    const delays: number[] = [];
    const consulDelays: number[] = [];
    const polls: number[] = [];
    const steps: E2eResult['steps'] = { arrived: [], started: [], pushed: [], acked: [] };
    for (let k = 0; k < CHANGES; k++) {
      const service = upstreamNames[Math.floor(k / 2) * 4] as string;
      const node = Math.floor(k / 2) % INSTANCES;
      const critical = k % 2 === 0;
      const expected = critical ? INSTANCES - 1 : INSTANCES;
      const now = await endpointsInEnvoy(service);
      if (now !== (critical ? INSTANCES : INSTANCES - 1))
        throw fail(`change ${k}`, new Error(`Envoy has ${now} endpoints in outbound:${service} before the change`));
      // Consul's own share: a raw blocking query on the service, returning when Consul has the change.
      const index = (await fetch(`${consulBase}/v1/health/service/${service}`)).headers.get('X-Consul-Index');
      let t0 = 0;
      const raw = fetch(`${consulBase}/v1/health/service/${service}?index=${index}&wait=30s`).then(async (r) => {
        await r.arrayBuffer();
        return performance.now() - t0;
      });
      t0 = performance.now();
      const wall0 = Date.now();
      await txn(consulBase, [checkOp(node, service, critical ? 'critical' : 'passing')]);
      for (;;) {
        const p0 = performance.now();
        const value = await endpointsInEnvoy(service);
        polls.push(performance.now() - p0);
        if (value === expected) break;
        if (performance.now() - t0 > APPLY_TIMEOUT_MS) {
          throw fail(
            `change ${k}`,
            new Error(`Envoy did not show ${expected} endpoints in outbound:${service} within ${APPLY_TIMEOUT_MS} ms`),
            await agentStatus<AgentStatusDoc>(fx.statusAddr).catch(() => undefined),
          );
        }
        await sleep(POLL_MS);
      }
      delays.push(performance.now() - t0);
      consulDelays.push(await raw);
      const change = (await agentStatus<AgentStatusDoc>(fx.statusAddr, '/status/xds')).xds?.lastChange;
      if (change?.startedMs === undefined || change.pushedMs === undefined || change.ackedMs === undefined)
        throw fail(`change ${k}`, new Error(`/status xds.lastChange has no push or ACK: ${JSON.stringify(change)}`));
      steps.arrived.push(Date.parse(change.at) - wall0);
      steps.started.push(change.startedMs);
      steps.pushed.push(change.pushedMs);
      steps.acked.push(change.ackedMs);
      await sleep(PAUSE_MS);
    }
    await sleep(500);
    const after = await agentStatus<AgentStatusDoc>(fx.statusAddr);
    const end = after.xds?.counters[api] as PushCounters;
    if (!after.healthy) throw fail('unhealthy after the changes', new Error(after.problems.join('; ')), after);
    const agentRss = rssMb(agent.pid);
    const agentPeak = peakRssMb(agent.pid);
    const envoyPid = after.envoy?.pid;
    const envoyRss = typeof envoyPid === 'number' ? rssMb(envoyPid) : undefined;
    return {
      api,
      readyMs,
      initial,
      delays,
      consulDelays,
      steps,
      polls,
      rssReady,
      agentPeak,
      perChange: {
        bytes: (end.bytes - initial.bytes) / CHANGES,
        responses: (end.responses - initial.responses) / CHANGES,
        resources: (end.resources - initial.resources) / CHANGES,
      },
      agentRss,
      envoyRss,
      agentRssParts: rssParts(agent.pid),
      heap:
        after.agent === undefined
          ? 'unknown'
          : `${after.agent.memoryMb.heapUsed} MB / ${after.agent.memoryMb.heapTotal} MB / ${after.agent.memoryMb.external} MB`,
    };
  } finally {
    for (const c of cleanups.reverse()) await c().catch((err) => process.stderr.write(`cleanup: ${(err as Error).message}\n`));
  }
}

const part1 = await snapshotBuild();
process.stdout.write(`xds: snapshot for ${UPSTREAMS} upstreams x ${INSTANCES} instances built in process (${part1.resources} resources)\n`);

const { envoy } = await tools();
const cp = await startTestControlPlane({ trustDomain: TRUST_DOMAIN });
const results: E2eResult[] = [];
let setupMs = 0;
try {
  const consul = await startBenchConsul();
  try {
    const consulBase = `http://${consul.httpAddr}`;
    const setupStart = performance.now();
    await registerCatalog(consulBase);
    setupMs = performance.now() - setupStart;
    process.stdout.write(`xds: ${SERVICES} services x ${INSTANCES} instances registered in Consul in ${(setupMs / 1000).toFixed(1)} s\n`);
    for (const api of ['delta', 'sotw'] as const) {
      process.stdout.write(`xds: end to end with ${api} xDS: starting the agent and Envoy...\n`);
      const r = await endToEnd(api, consulBase, consul.httpAddr, cp, envoy.path);
      process.stdout.write(`xds: ${api}: ready in ${(r.readyMs / 1000).toFixed(1)} s, ${CHANGES} changes done\n`);
      results.push(r);
    }
  } finally {
    await consul.stop();
  }
} finally {
  await cp.stop();
}

const rows: Row[] = [...part1.rows];
for (const r of results) {
  rows.push(
    target(`[${r.api}] Consul write -> Envoy applied, p99 (${CHANGES} changes)`, pct(r.delays, 99), P99_TARGET_MS, 'ms'),
    info(`[${r.api}]   p50 / max`, `${ms(pct(r.delays, 50))} / ${ms(Math.max(...r.delays))}`),
    info(
      `[${r.api}]   of which Consul (raw blocking query returns) p50 / p99`,
      `${ms(pct(r.consulDelays, 50))} / ${ms(pct(r.consulDelays, 99))}`,
    ),
    info(
      `[${r.api}]   Consul write -> new view in the agent (ms resolution) p50 / p99`,
      `${ms(pct(r.steps.arrived, 50))} / ${ms(pct(r.steps.arrived, 99))}`,
    ),
    info(
      `[${r.api}]   new view -> rebuild started (the event loop's delay) p50 / p99`,
      `${ms(pct(r.steps.started, 50))} / ${ms(pct(r.steps.started, 99))}`,
    ),
    info(
      `[${r.api}]   new view -> pushed to Envoy (rebuild, check, encode) p50 / p99`,
      `${ms(pct(r.steps.pushed, 50))} / ${ms(pct(r.steps.pushed, 99))}`,
    ),
    info(`[${r.api}]   new view -> Envoy's ACK p50 / p99`, `${ms(pct(r.steps.acked, 50))} / ${ms(pct(r.steps.acked, 99))}`),
    info(
      `[${r.api}]   Envoy admin EDS config_dump poll, p50 / p99 (every ${POLL_MS} ms)`,
      `${ms(pct(r.polls, 50))} / ${ms(pct(r.polls, 99))}`,
    ),
    info(
      `[${r.api}] bytes pushed per change`,
      `${kb(r.perChange.bytes)} (${r.perChange.responses} responses, ${r.perChange.resources} resources)`,
    ),
    info(
      `[${r.api}] pushed from Envoy's connect until ready`,
      `${kb(r.initial.bytes)} (${r.initial.responses} responses, ${r.initial.resources} resources)`,
    ),
    target(`[${r.api}] agent RSS after the changes`, r.agentRss, RSS_TARGET_MB, 'MB'),
    info(`[${r.api}]   agent RSS once ready / peak (VmHWM)`, `${r.rssReady.toFixed(1)} MB / ${r.agentPeak.toFixed(1)} MB`),
    info(
      `[${r.api}]   agent RssAnon / RssFile after the changes`,
      `${r.agentRssParts.anon.toFixed(1)} MB / ${r.agentRssParts.file.toFixed(1)} MB`,
    ),
    info(`[${r.api}]   agent heap used / heap total / external (from /status)`, r.heap),
    info(`[${r.api}] Envoy RSS`, r.envoyRss === undefined ? 'unknown (no envoy.pid in /status)' : `${r.envoyRss.toFixed(1)} MB`),
  );
}
process.stdout.write(
  `\nxds: ${SERVICES} services x ${INSTANCES} endpoints in Consul, ${UPSTREAMS} upstreams on the agent, ` +
    `${CHANGES} health changes per API (a change is applied when Envoy's admin API shows the changed endpoint count of the cluster ` +
    `in /config_dump?include_eds&resource=dynamic_endpoint_configs); ` +
    `Consul limits.http_max_conns_per_client raised to ${CONSUL_MAX_CONNS_PER_CLIENT} (default 200: the agent's 200 blocking queries exceed it)\n\n`,
);
process.stdout.write(`${formatTable(['figure', 'value', 'target', 'result'], rows)}\n`);
const misses = rows.filter((r) => r[3] === 'NOT met').length;
process.stdout.write(`\n${misses === 0 ? 'all targets met' : `${misses} target(s) NOT met`}\n`);
