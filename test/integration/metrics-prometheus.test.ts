/**
 * Metrics end to end with the real parts: the control plane (SVIDs, valid
 * 50 minutes so that "certificates expiring within 1 h" finds them), a
 * Consul dev agent, one agent as `mesh-agent run` wires it with real Envoy
 * serving web and api, web calling api through the mesh; a real Prometheus
 * 2.42 scrapes the agent's status listener /metrics and the control plane's
 * metrics listener every second.
 * - the query API returns agent series (xDS ACKs per type, snapshot build
 *   histogram, Consul watch state), the SVID-expiry gauge, and Envoy series of
 *   the web->api requests labelled with source and destination service, both
 *   SPIFFE IDs and the response code;
 * - each PromQL example of docs/operations/monitoring.md answers with series;
 * - the control plane's series: SVIDs issued, join attempts (one refused), the
 *   denial by code, call durations, commit times, the agent's two streams;
 * - `promtool check metrics` finds no parse error in either /metrics, and no
 *   lint finding on our own metric names.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { joinMesh } from '../../agent/identity/enroll.js';
import { fencedBlocks } from '../support/doc-blocks.js';
import { getJson } from '../support/mesh-apps.js';
import { startMeshNode } from '../support/mesh-node.js';
import { meshTraffic, startMeshPeers, startWebApi } from '../support/mesh-world.js';
import { type PromSeries, promtoolCheck, startPrometheus } from '../support/prometheus.js';
import { httpGet, waitFor } from '../support/wait.js';

t.setTimeout(300_000);

const TD = 'example.org';
const WEB = `spiffe://${TD}/ns/default/sa/web`;
const API = `spiffe://${TD}/ns/default/sa/api`;

const peers = await startMeshPeers(t, { trustDomain: TD, svidTtl: '50m', metricsListen: '127.0.0.1:0' });
const cpMetrics = peers.cp.cp.metricsAddress as string;
const apps = await startWebApi(t);
const node = await startMeshNode({ cp: peers.cp, consulAddr: peers.consul.httpAddr, nodeName: 'metrics-1', workloads: apps.files() });
t.teardown(() => node.stop());
const statusAddress = node.agent.statusAddress as string;
await meshTraffic(apps.ports.apiLocal);

// A join with a token the control plane never issued: one denial, by code.
const badJoinDir = await mkdtemp(path.join(os.tmpdir(), 'mesh-badjoin-'));
t.teardown(() => rm(badJoinDir, { recursive: true, force: true }));
const badJoin = await joinMesh({
  address: peers.cp.cp.address,
  token: 'not-a-token',
  bundlePem: peers.cp.bundlePem(),
  dataDir: path.join(badJoinDir, 'data'),
}).then(
  () => 'joined',
  (err: unknown) => (err as { code?: string }).code ?? String(err),
);

const prom = await startPrometheus([
  { job: 'mesh-agent', address: statusAddress },
  { job: 'mesh-controlplane', address: cpMetrics },
]);
t.teardown(() => prom.stop());

/** Polls a query until it returns series (a web->api request each time, so rates over fresh samples are not zero). */
async function series(expr: string, accept: (s: PromSeries[]) => boolean = (s) => s.length > 0): Promise<PromSeries[]> {
  return waitFor(
    async () => {
      await getJson(apps.ports.apiLocal).catch(() => undefined);
      const result = await prom.query(expr);
      return accept(result) ? result : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 500, what: `Prometheus answering ${expr}` },
  );
}

/**
 * promtool's lint findings on our own metric names (one per line: "NAME finding"), leaving
 * out prom-client's Node.js defaults (gauges named *_total) and Envoy's names (counters
 * without _total), which are not ours to rename.
 */
function ownFindings(output: string, prefix: string): string[] {
  return output.split('\n').filter((l) => l.startsWith(prefix) && !l.startsWith(`${prefix}nodejs_`) && !l.startsWith(`${prefix}process_`));
}

t.test('Prometheus scrapes the agent: the target is up and agent series are there', async (t) => {
  const up = await series('up{job="mesh-agent"} == 1');
  t.equal(up.length, 1, 'the agent is one target, up');
  const acks = await series('mesh_agent_xds_acks_total');
  const types = new Set(acks.map((s) => s.metric.type));
  for (const type of ['CDS', 'EDS', 'LDS', 'RDS', 'SDS']) t.ok(types.has(type), `ACKs counted for ${type}`);
  const builds = await series('mesh_agent_snapshot_build_seconds_count > 0');
  t.ok(Number(builds[0]?.value[1]) >= 1, 'snapshot builds observed in the histogram');
  const watch = await series('mesh_agent_consul_watch_state{service="api",state="ok"} == 1');
  t.equal(watch.length, 1, 'the catalog watch of api is ok');
  const envoy = await series('mesh_agent_envoy_state{state="running"} == 1');
  t.equal(envoy.length, 1, 'Envoy running');
});

t.test('the SVID-expiry gauge: both workloads and the node, within the 50 minutes the control plane gives', async (t) => {
  const svids = await series('mesh_agent_svid_expiry_seconds', (s) => s.length >= 3);
  const byId = new Map(svids.map((s) => [s.metric.spiffe_id, s]));
  for (const id of [WEB, API]) {
    const s = byId.get(id);
    t.ok(s !== undefined, `expiry of ${id}`);
    const left = Number(s?.value[1]);
    t.ok(left > 0 && left <= 50 * 60, `${id} expires in ${Math.round(left)} s`);
  }
  t.ok(
    svids.some((s) => s.metric.kind === 'node' && s.metric.spiffe_id?.startsWith(`spiffe://${TD}/`)),
    'the node SVID with its SPIFFE ID',
  );
});

t.test("Envoy's series of the web->api requests carry the mesh labels", async (t) => {
  const rq = await series('envoy_cluster_upstream_rq{source_service="web",destination_service="api",response_code="200"} > 0');
  t.equal(rq.length, 1, 'one series: web -> api, 200');
  const labels = rq[0]?.metric ?? {};
  t.equal(labels.source_spiffe_id, WEB, 'the caller SPIFFE ID');
  t.equal(labels.destination_spiffe_id, API, 'the SPIFFE ID allowed to serve api');
  t.equal(labels.envoy_cluster_name, 'outbound_api@web', "Envoy's own cluster label is kept (':' made '_' by Envoy)");
  const inbound = await series('envoy_http_downstream_rq_xx{destination_service="api",envoy_response_code_class="2"} > 0');
  t.equal(inbound[0]?.metric.destination_spiffe_id, API, "api's inbound listener is labelled with its SPIFFE ID");
  const latency = await series('envoy_cluster_upstream_rq_time_bucket{destination_service="api",source_service="web"}');
  t.ok(latency.length > 1, `the latency histogram of web -> api (${latency.length} buckets)`);
});

t.test('the PromQL examples of docs/operations/monitoring.md answer as written', async (t) => {
  const doc = await readFile(new URL('../../docs/operations/monitoring.md', import.meta.url), 'utf8');
  const examples = fencedBlocks(doc).filter((b) => b.lang === 'promql');
  t.equal(examples.length, 3, 'three examples');
  for (const block of examples) {
    const expr = block.body.trim();
    const result = await series(expr, (s) => s.length > 0 && s.every((x) => !Number.isNaN(Number(x.value[1]))));
    t.ok(result.length > 0, `line ${block.line}: ${expr.split('\n')[0]} -> ${result.map((s) => JSON.stringify(s.metric)).join(' ')}`);
  }
});

t.test('the control plane target: issuances, join attempts, denials by code, commit times, streams', async (t) => {
  t.not(badJoin, 'joined', `the join with a bad token was refused (${badJoin})`);
  await series('up{job="mesh-controlplane"} == 1');
  const issued = await series('mesh_controlplane_svids_issued_total{kind="workload"} >= 2');
  t.ok(Number(issued[0]?.value[1]) >= 2, 'the SVIDs of web and api were counted');
  const joins = await series('mesh_controlplane_join_attempts_total', (s) => s.length >= 2);
  t.ok(
    joins.some((s) => s.metric.result === 'ok' && Number(s.value[1]) >= 1),
    'the node join counted ok',
  );
  t.ok(
    joins.some((s) => s.metric.result === badJoin),
    `the bad join counted as ${badJoin}`,
  );
  const denials = await series(`mesh_controlplane_denials_total{method="Join",code="${badJoin}"} >= 1`);
  t.equal(denials.length, 1, 'the denial by code');
  await series('mesh_controlplane_db_commit_seconds_count{phase="transaction"} > 0');
  await series('mesh_controlplane_request_duration_seconds_count{method="SignWorkload",result="ok"} > 0');
  const streams = await series('mesh_controlplane_streams', (s) => s.length === 2 && s.every((x) => Number(x.value[1]) >= 1));
  t.same(streams.map((s) => s.metric.stream).sort(), ['bundle', 'policy'], "the agent's bundle and policy streams");
});

t.test("promtool check metrics finds no parse error in the control plane's /metrics", async (t) => {
  const { status, body } = await httpGet(`http://${cpMetrics}/metrics`);
  t.equal(status, 200);
  const check = await promtoolCheck(body);
  t.not(check.code, 1, `no parse error (exit ${check.code})`);
  t.same(ownFindings(check.output, 'mesh_controlplane_'), [], "no lint finding on the control plane's own metrics");
});

t.test("promtool check metrics finds no parse error in the agent's /metrics", async (t) => {
  const { status, body, headers } = await httpGet(`http://${statusAddress}/metrics`);
  t.equal(status, 200);
  t.match(headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  t.match(body, /^envoy_cluster_upstream_rq\{.*source_service="web"/m, "Envoy's series are in the agent's answer");
  const check = await promtoolCheck(body);
  t.not(check.code, 1, `no parse error (exit ${check.code})`);
  t.same(ownFindings(check.output, 'mesh_agent_'), [], "no lint finding on the agent's own metrics");
  t.comment(`promtool: exit ${check.code}; ${check.output.split('\n').filter(Boolean).length} lint findings on Envoy's and Node's names`);
  const lines = body.split('\n');
  const samples = (prefix: string) => lines.filter((l) => l.startsWith(prefix)).length;
  const took = await prom.query('scrape_duration_seconds{job="mesh-agent"}');
  t.comment(
    `/metrics: ${body.length} bytes, ${samples('mesh_agent_')} agent samples, ${samples('envoy_')} Envoy samples; Prometheus's last scrape took ${(Number(took[0]?.value[1]) * 1000).toFixed(1)} ms`,
  );
});
