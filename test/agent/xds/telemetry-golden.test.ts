/**
 * Golden tests of access logs and tracing in the xDS builders: the fixture
 * model (web http, api grpc, cache tcp; web calls api and cache) with web's
 * access log on, a log file, and tracing to Zipkin; then the OpenTelemetry
 * provider. test/golden/xds/telemetry/*.json are the spec (UPDATE_GOLDEN=1
 * rewrites them); every resource must be a valid Envoy v3 message.
 */
import t, { type Test } from 'tap';
import type { ModelTracing, ProxyModel } from '../../../agent/model/proxy-model.js';
import { checkSnapshot } from '../../../agent/xds/check-snapshot.js';
import { TRACING_CLUSTER } from '../../../agent/xds/names.js';
import { ACCESS_LOG_KIND } from '../../../agent/xds/resources/access-log.js';
import { RESOURCE_KINDS, type ResourceKind, type Snapshot } from '../../../agent/xds/snapshot.js';
import { buildSnapshot } from '../../../agent/xds/snapshot-build.js';
import { XDS_TYPES } from '../../../agent/xds/xds-types.js';
import { checkMessage } from '../../../lib/envoy/protos.js';
import { matchGolden } from '../../support/golden.js';
import { fixtureIdentities, fixtureModel } from './fixtures/model.js';

const TYPE_OF = Object.fromEntries(XDS_TYPES.map((x) => [x.kind, x.typeUrl])) as Record<ResourceKind, string>;

const LOG = '/var/lib/mesh-agent/envoy/access.log';
const ZIPKIN: ModelTracing = { provider: 'zipkin', host: '127.0.0.1', port: 9411, samplingPercent: 100 };
const OTEL: ModelTracing = { provider: 'opentelemetry', host: 'otel-collector.internal', port: 4317, samplingPercent: 12.5 };

function model(tracing: ModelTracing): ProxyModel {
  const base = fixtureModel();
  return {
    ...base,
    workloads: base.workloads.map((w) => (w.name === 'web' ? { ...w, accessLog: true as const } : w)),
    accessLogPath: LOG,
    tracing,
  };
}

function byName(snapshot: Snapshot, kind: ResourceKind): Record<string, unknown> {
  return Object.fromEntries([...snapshot.resources[kind].entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function valid(t: Test, snapshot: Snapshot): void {
  t.strictSame(checkSnapshot(snapshot), [], 'the snapshot is consistent');
  for (const kind of RESOURCE_KINDS)
    for (const [name, resource] of snapshot.resources[kind])
      t.doesNotThrow(() => checkMessage(TYPE_OF[kind], resource), `${kind} ${name} passes checkMessage`);
}

t.test('zipkin: tracer on every HTTP connection manager, access logs for web, the collector cluster', async (t) => {
  const snapshot = buildSnapshot(model(ZIPKIN), fixtureIdentities());
  valid(t, snapshot);
  matchGolden(t, 'xds/telemetry/zipkin-listeners.json', byName(snapshot, 'listeners'));
  matchGolden(t, 'xds/telemetry/zipkin-routes.json', byName(snapshot, 'routes'));
  matchGolden(t, 'xds/telemetry/zipkin-cluster.json', snapshot.resources.clusters.get(TRACING_CLUSTER));

  const listeners = byName(snapshot, 'listeners') as Record<
    string,
    { filter_chains: Array<{ filters: Array<{ typed_config: Record<string, unknown> }> }> }
  >;
  const hcm = (name: string) => listeners[name]?.filter_chains[0]?.filters[0]?.typed_config ?? {};
  t.ok(hcm('inbound:web').tracing, 'inbound HTTP has the tracer');
  t.ok(hcm('inbound:api').tracing, 'inbound gRPC has the tracer');
  t.ok(hcm('outbound:api:9001').tracing, 'outbound HTTP has the tracer');
  t.notOk(hcm('inbound:api').access_log, 'api (no accessLog, no policy) is not logged');
  t.ok(hcm('inbound:web').access_log, 'web is logged inbound');
  t.ok(hcm('outbound:api:9001').access_log, "web's outbound calls are logged");
  t.ok(hcm('outbound:cache:6380').access_log, "web's outbound TCP is logged by its tcp_proxy");
  const fields = JSON.stringify(hcm('outbound:api:9001').access_log);
  for (const op of ['%UPSTREAM_PEER_URI_SAN%', '%UPSTREAM_HOST%', '%UPSTREAM_CLUSTER%', '%TRACE_ID%', '%RESPONSE_FLAGS%', '%DURATION%'])
    t.match(fields, op, `outbound lines carry ${op}`);
  t.match(
    JSON.stringify(hcm('inbound:web').access_log),
    '%DOWNSTREAM_PEER_URI_SAN%',
    'inbound lines carry the peer from its client certificate',
  );
  t.match(fields, `"stringValue":"${ACCESS_LOG_KIND}"`, 'lines carry kind: access');
});

t.test('opentelemetry: gRPC to the collector (HTTP/2, DNS name), service.name per workload, sampling', async (t) => {
  const snapshot = buildSnapshot(model(OTEL), fixtureIdentities());
  valid(t, snapshot);
  matchGolden(t, 'xds/telemetry/otel-cluster.json', snapshot.resources.clusters.get(TRACING_CLUSTER));
  const listener = snapshot.resources.listeners.get('outbound:api:9001') as {
    filter_chains: Array<{ filters: Array<{ typed_config: { tracing: unknown } }> }>;
  };
  matchGolden(t, 'xds/telemetry/otel-outbound-tracing.json', listener.filter_chains[0]?.filters[0]?.typed_config.tracing);
});

t.test('without tracing and access logs the fixture snapshot is unchanged', async (t) => {
  const plain = buildSnapshot(fixtureModel(), fixtureIdentities());
  t.notOk(plain.resources.clusters.has(TRACING_CLUSTER), 'no collector cluster');
  t.notMatch(JSON.stringify([...plain.resources.listeners.values()]), /tracing|access_log/, 'no tracer, no access log');
});
