import t from 'tap';
import type { AdminRequest } from '../../../agent/envoy/admin-client.js';
import { createAgentMetrics } from '../../../agent/status/agent-metrics.js';
import { labelIndex } from '../../../agent/status/envoy-labels.js';
import { metricsEndpoint } from '../../../agent/status/metrics-endpoint.js';
import type { StatusDocument } from '../../../agent/status/status.js';
import { silentLogger } from '../../../lib/logger.js';
import { FakeClock } from '../../fakes/clock.js';
import { sampleValue as value } from '../../support/prometheus.js';
import { webApiModel } from '../../support/web-api-model.js';

const WEB = 'spiffe://example.org/ns/default/sa/web';

function statusDoc(clock: FakeClock, overrides: Partial<StatusDocument> = {}): StatusDocument {
  const at = (ms: number) => new Date(clock.now() + ms).toISOString();
  return {
    node: 'vm1',
    consul: { mode: 'agent', address: 'c:1', state: 'connected' },
    workloads: [
      {
        name: 'web',
        file: '/w/web.yaml',
        spiffeId: WEB,
        port: 8080,
        meshPort: 18080,
        registration: 'registered',
        svid: { state: 'ready', notAfter: at(1_800_000) },
      },
    ],
    workloadErrors: [],
    upstreams: [
      { service: 'api', instances: 1, source: 'consul', watch: 'ok', caller: 'web', localPort: 9001 },
      { service: 'db', instances: 0, source: 'none', watch: 'failing', error: 'refused' },
    ],
    catalogVersion: 3,
    nodeSvid: { state: 'ready', notAfter: at(-5_000) },
    policy: { revision: 7, origin: 'controlplane', connected: true },
    envoy: { state: 'running', restarts: 2, epoch: 1 },
    transparentProxy: {
      state: 'drift',
      ipv6: false,
      failurePolicy: 'closed',
      rules: { expected: 4, installed: 3 },
      drift: { missing: ['x'], unexpected: [] },
      inboundPorts: [],
      repairs: 1,
    },
    healthy: false,
    problems: ['x'],
    ...overrides,
  };
}

t.test('events: xDS pushes, ACKs and NACKs per type and API; snapshot builds; watch answers; renewal failures; hot restarts', async (t) => {
  const clock = new FakeClock();
  const m = createAgentMetrics({ clock, version: '1.2.3', node: 'vm1' });
  m.recordXds({ kind: 'push', api: 'delta', stream: 1, type: 'CDS', version: 'v1', bytes: 100, resources: 2, removed: 0 });
  m.recordXds({ kind: 'push', api: 'delta', stream: 1, type: 'CDS', version: 'v2', bytes: 50, resources: 2, removed: 0 });
  m.recordXds({ kind: 'ack', api: 'delta', stream: 1, node: 'vm1', type: 'CDS', version: 'v1' });
  m.recordXds({
    kind: 'nack',
    api: 'delta',
    stream: 1,
    nack: { type: 'LDS', version: 'v2', nonce: '2', detail: 'bad', at: clock.now(), node: 'vm1' },
  });
  m.recordXds({ kind: 'connected', api: 'delta', stream: 1, node: 'vm1' });
  m.recordSnapshotBuild(3);
  m.recordWatchAnswer('api', 1200, 'changed');
  m.recordWatchAnswer('api', 10, 'error');
  m.recordRenewalFailure('node');
  m.recordRenewalFailure('node');
  m.recordEnvoyEvent('hot-restarted');
  m.recordEnvoyEvent('started');
  const text = await m.registry.metrics();
  t.equal(value(text, 'mesh_agent_info{version="1.2.3",node="vm1"}'), 1);
  t.equal(value(text, 'mesh_agent_xds_pushes_total{type="CDS",api="delta"}'), 2);
  t.equal(value(text, 'mesh_agent_xds_push_bytes_total{type="CDS",api="delta"}'), 150);
  t.equal(value(text, 'mesh_agent_xds_acks_total{type="CDS",api="delta"}'), 1);
  t.equal(value(text, 'mesh_agent_xds_nacks_total{type="LDS",api="delta"}'), 1);
  t.equal(value(text, 'mesh_agent_snapshot_build_seconds_count'), 1);
  t.equal(value(text, 'mesh_agent_snapshot_build_seconds_bucket{le="0.005"}'), 1, '3 ms is in the 5 ms bucket');
  t.equal(value(text, 'mesh_agent_snapshot_build_seconds_bucket{le="0.0025"}'), 0);
  t.equal(value(text, 'mesh_agent_consul_watch_duration_seconds_count{service="api",outcome="changed"}'), 1);
  t.equal(value(text, 'mesh_agent_consul_watch_duration_seconds_count{service="api",outcome="error"}'), 1);
  t.equal(value(text, 'mesh_agent_consul_watch_last_answer_timestamp_seconds{service="api"}'), clock.now() / 1000);
  t.equal(value(text, 'mesh_agent_svid_rotation_failures_total{credential="node"}'), 2);
  t.equal(value(text, 'mesh_agent_envoy_hot_restarts_total'), 1, 'only hot-restarted counts');
});

t.test('read at scrape time from status: SVID expiry, watch states, Envoy, capture, policy, health', async (t) => {
  const clock = new FakeClock();
  const m = createAgentMetrics({ clock });
  let doc = statusDoc(clock);
  let built = 0;
  m.setStatusSource(
    () => {
      built++;
      return doc;
    },
    () => 'spiffe://example.org/node/vm1',
  );
  let text = await m.text();
  t.equal(built, 1, 'one status document for the whole scrape');
  t.equal(value(text, `mesh_agent_svid_expiry_seconds{kind="workload",workload="web",spiffe_id="${WEB}"}`), 1800);
  t.equal(value(text, 'mesh_agent_svid_expiry_seconds{kind="node",workload="",spiffe_id="spiffe://example.org/node/vm1"}'), -5);
  t.equal(value(text, 'mesh_agent_consul_watch_state{service="api",state="ok"}'), 1);
  t.equal(value(text, 'mesh_agent_consul_watch_state{service="db",state="failing"}'), 1);
  t.equal(value(text, 'mesh_agent_consul_watch_state{service="db",state="ok"}'), 0);
  t.equal(value(text, 'mesh_agent_envoy_restarts_total'), 2);
  t.equal(value(text, 'mesh_agent_envoy_epoch'), 1);
  t.equal(value(text, 'mesh_agent_envoy_state{state="running"}'), 1);
  t.equal(value(text, 'mesh_agent_envoy_state{state="backoff"}'), 0);
  t.equal(value(text, 'mesh_agent_capture_state{state="drift"}'), 1);
  t.equal(value(text, 'mesh_agent_policy_revision{origin="controlplane"}'), 7);
  t.equal(value(text, 'mesh_agent_healthy'), 0);

  clock.advance(60_000);
  doc = statusDoc(clock, { envoy: { state: 'backoff', restarts: 3, epoch: 0 }, upstreams: [], healthy: true, problems: [] });
  const { transparentProxy: _, ...noCapture } = doc;
  doc = noCapture;
  text = await m.registry.metrics();
  t.equal(value(text, `mesh_agent_svid_expiry_seconds{kind="workload",workload="web",spiffe_id="${WEB}"}`), 1800, 'the new document');
  t.equal(value(text, 'mesh_agent_envoy_restarts_total'), 3);
  t.equal(value(text, 'mesh_agent_envoy_state{state="backoff"}'), 1);
  t.notMatch(text, /mesh_agent_capture_state\{/, 'no capture series when capture is off');
  t.notMatch(text, /mesh_agent_consul_watch_state\{/, 'no watch series for watches that ended');
  t.equal(value(text, 'mesh_agent_healthy'), 1);
});

t.test("GET /metrics: the agent's metrics then Envoy's labelled; Envoy unreachable serves the agent's alone and counts it", async (t) => {
  const clock = new FakeClock();
  const m = createAgentMetrics({ clock });
  const asked: string[] = [];
  let envoyUp = true;
  const admin: AdminRequest = async (address, _method, apiPath) => {
    asked.push(`${address}${apiPath}`);
    if (!envoyUp) throw new Error('connect ECONNREFUSED');
    return { status: 200, body: 'envoy_cluster_upstream_rq{envoy_response_code="503",envoy_cluster_name="outbound_api@web"} 4\n' };
  };
  const index = labelIndex(webApiModel('example.org', { webApp: 1, apiApp: 2, webMesh: 3, apiMesh: 4, local: 5 }));
  let adminAddress: string | undefined = '127.0.0.1:9901';
  const get = metricsEndpoint({ metrics: m, envoyAdmin: () => adminAddress, labels: () => index, log: silentLogger, admin });
  let answer = await get();
  t.match(answer.contentType, /^text\/plain; version=0\.0\.4/);
  t.match(answer.body, /^mesh_agent_info\{/m);
  t.match(answer.body, /^envoy_cluster_upstream_rq\{.*source_service="web".*destination_service="api".*response_code="503"\} 4$/m);
  t.same(asked, ['127.0.0.1:9901/stats/prometheus?usedonly']);
  envoyUp = false;
  answer = await get();
  t.notMatch(answer.body, /^envoy_/m);
  t.equal(value(answer.body, 'mesh_agent_envoy_stats_scrape_failures_total'), 1);
  adminAddress = undefined;
  answer = await get();
  t.equal(asked.length, 2, 'no admin call while there is no Envoy');
  t.equal(value(answer.body, 'mesh_agent_envoy_stats_scrape_failures_total'), 1, 'no Envoy is not a failure');
});
