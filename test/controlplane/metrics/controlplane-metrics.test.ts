import t from 'tap';
import { controlplaneSchema } from '../../../controlplane/config/schema.js';
import { createControlPlaneMetrics } from '../../../controlplane/metrics/controlplane-metrics.js';
import { startMetricsServer } from '../../../controlplane/metrics/metrics-server.js';

function value(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

t.test('calls: issuances by kind, denials by code, join attempts, durations; commits; streams', async (t) => {
  const m = createControlPlaneMetrics({ version: '0.1.0' });
  m.recordCall('Join', 4);
  m.recordCall('Join', 1, 'MESH_E_TOKEN_EXPIRED');
  m.recordCall('RenewNode', 2);
  m.recordCall('SignWorkload', 3);
  m.recordCall('SignWorkload', 3);
  m.recordCall('SignWorkload', 1, 'MESH_E_SPIFFE_ID_NOT_ALLOWED');
  m.recordCall('GetBundle', 1);
  m.recordCall('SignWorkload', 1, 'MESH_E_INTERNAL');
  m.recordDenial('Policy.Watch', 'MESH_E_NODE_REVOKED');
  m.recordCommit('transaction', 0.3);
  m.recordCommit('sync', 2);
  m.streamOpened('bundle');
  m.streamOpened('bundle');
  m.streamClosed('bundle');
  m.setPolicyStreams(() => 5);
  const text = await m.registry.metrics();
  t.equal(value(text, 'mesh_controlplane_svids_issued_total{kind="node"}'), 2, 'join and node renewal');
  t.equal(value(text, 'mesh_controlplane_svids_issued_total{kind="workload"}'), 2);
  t.equal(value(text, 'mesh_controlplane_denials_total{method="Join",code="MESH_E_TOKEN_EXPIRED"}'), 1);
  t.equal(value(text, 'mesh_controlplane_denials_total{method="SignWorkload",code="MESH_E_SPIFFE_ID_NOT_ALLOWED"}'), 1);
  t.equal(value(text, 'mesh_controlplane_denials_total{method="Policy.Watch",code="MESH_E_NODE_REVOKED"}'), 1);
  t.notMatch(text, /denials_total\{[^}]*MESH_E_INTERNAL/, 'an internal error is no denial');
  t.equal(value(text, 'mesh_controlplane_join_attempts_total{result="ok"}'), 1);
  t.equal(value(text, 'mesh_controlplane_join_attempts_total{result="MESH_E_TOKEN_EXPIRED"}'), 1);
  t.equal(value(text, 'mesh_controlplane_request_duration_seconds_count{method="SignWorkload",result="ok"}'), 2);
  t.equal(value(text, 'mesh_controlplane_request_duration_seconds_count{method="SignWorkload",result="MESH_E_INTERNAL"}'), 1);
  t.equal(value(text, 'mesh_controlplane_db_commit_seconds_count{phase="transaction"}'), 1);
  t.equal(value(text, 'mesh_controlplane_db_commit_seconds_bucket{le="0.0025",phase="sync"}'), 1);
  t.equal(value(text, 'mesh_controlplane_streams{stream="bundle"}'), 1);
  t.equal(value(text, 'mesh_controlplane_streams{stream="policy"}'), 5);
});

t.test('metrics.listen: absent by default; a listener answers GET /metrics and 404 elsewhere', async (t) => {
  const parsed = controlplaneSchema.parse({ dataDir: '/d', trustDomain: 'example.org' });
  t.same(parsed.metrics, {}, 'off by default');
  t.throws(() => controlplaneSchema.parse({ dataDir: '/d', trustDomain: 'example.org', metrics: { listen: 'nope' } }));
  const m = createControlPlaneMetrics();
  const server = await startMetricsServer('127.0.0.1:0', m);
  t.teardown(() => server.close());
  const ok = await fetch(`http://${server.address}/metrics`);
  t.equal(ok.status, 200);
  t.match(await ok.text(), /^# HELP mesh_controlplane_info/m);
  t.equal((await fetch(`http://${server.address}/`)).status, 404);
  await t.rejects(startMetricsServer(server.address, m), { code: 'MESH_E_CONFIG_INVALID' }, 'a port in use names metrics.listen');
});
