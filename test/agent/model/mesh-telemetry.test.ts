/**
 * MeshTelemetry on the agent: agent.yaml `tracing` wins over the policy, the
 * policy's tracing gives the same Envoy resources as the same agent.yaml
 * tracing (tracer on the inbound and outbound HCMs, the collector cluster;
 * the builders are golden-tested in test/agent/xds/telemetry-golden.test.ts),
 * no MeshTelemetry means no tracer; per-resource status says when it is not
 * used and why; a NACK rolls it back like the other kinds; `mesh-agent status`
 * shows the tracing in force and its source.
 */
import t from 'tap';
import { PolicyLifecycle } from '../../../agent/dataplane/policy-lifecycle.js';
import { policyKey } from '../../../agent/dataplane/policy-rollback.js';
import { policyResourceStatuses } from '../../../agent/dataplane/policy-status.js';
import { makeView } from '../../../agent/discovery/catalog-view.js';
import { buildModel } from '../../../agent/model/build-model.js';
import { meshTelemetryInForce, resolveTracing, toModelTracing } from '../../../agent/model/mesh-telemetry.js';
import type { ModelTracing } from '../../../agent/model/proxy-model.js';
import { renderStatus } from '../../../agent/status/render.js';
import { buildStatus } from '../../../agent/status/status.js';
import type { AckedResources } from '../../../agent/xds/cache/acked-resources.js';
import { TRACING_CLUSTER } from '../../../agent/xds/names.js';
import { RESOURCE_KINDS, type Snapshot } from '../../../agent/xds/snapshot.js';
import { buildSnapshot } from '../../../agent/xds/snapshot-build.js';
import { createLogger } from '../../../lib/logger.js';
import { parsePolicyDocument } from '../../../lib/policy/parse.js';
import type { PolicyDocument, StoredPolicy } from '../../../lib/policy/schema.js';
import { FakePolicySource } from '../../fakes/policy-source.js';
import { idleDataPlaneStatus, statusInput } from '../../support/status-input.js';
import { apiInstance, policyDoc, web } from '../dataplane/policy-fixtures.js';
import { snapshotOf } from '../xds/fixtures/streams.js';

const TD = 'example.org';
const meshTelemetry = (name: string, tracing: Record<string, unknown> = { provider: 'zipkin', address: '127.0.0.1:9411' }) =>
  policyDoc('MeshTelemetry', name, { tracing });
const parsed = (input: unknown): PolicyDocument => {
  const r = parsePolicyDocument(input);
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return r.document;
};
const AGENT: ModelTracing = { provider: 'opentelemetry', host: 'otel.internal', port: 4317, samplingPercent: 5 };
const POLICY: ModelTracing = { provider: 'zipkin', host: '127.0.0.1', port: 9411, samplingPercent: 100 };

t.test('resolveTracing: agent.yaml wins, else the MeshTelemetry with the lowest name, else none', async (t) => {
  const a = parsed(meshTelemetry('a'));
  const b = parsed(meshTelemetry('b', { provider: 'opentelemetry', address: 'otel.internal:4317', samplingPercent: 1 }));
  t.same(resolveTracing(AGENT, [a]), { tracing: AGENT, source: 'agent.yaml' });
  t.same(resolveTracing(undefined, [a]), { tracing: POLICY, source: 'MeshTelemetry/a' });
  t.equal(meshTelemetryInForce([b, a])?.name, 'a', 'the lowest name, whatever the order');
  t.same(resolveTracing(undefined, []), {});
  t.same(toModelTracing(b.kind === 'MeshTelemetry' ? b.spec.tracing : (undefined as never)), {
    provider: 'opentelemetry',
    host: 'otel.internal',
    port: 4317,
    samplingPercent: 1,
  });
});

const view = makeView(1, [{ name: 'api', source: 'consul', instances: [apiInstance('api-1')] }]);
const identities = {
  certs: new Map([[web.spiffeId, { chainPem: 'C', keyPem: 'K' }]]),
  bundlePem: 'B',
};
const model = (policies: PolicyDocument[], tracing?: ModelTracing) =>
  buildModel({
    nodeName: 'vm1',
    trustDomain: TD,
    workloads: [web],
    view,
    svids: new Set([web.spiffeId]),
    policies,
    ...(tracing === undefined ? {} : { tracing }),
  });
type Hcm = { tracing?: unknown };
const hcmOf = (snapshot: Snapshot, listener: string): Hcm =>
  (snapshot.resources.listeners.get(listener) as { filter_chains: Array<{ filters: Array<{ typed_config: Hcm }> }> })?.filter_chains[0]
    ?.filters[0]?.typed_config ?? {};

t.test('the policy tracing puts the tracer on inbound and outbound HCMs and adds the collector cluster', async (t) => {
  const fromPolicy = model([parsed(meshTelemetry('mesh'))]);
  t.same(fromPolicy.model.tracing, POLICY);
  t.equal(fromPolicy.tracingSource, 'MeshTelemetry/mesh');
  const snapshot = buildSnapshot(fromPolicy.model, identities);
  t.ok(hcmOf(snapshot, 'inbound:web').tracing, 'inbound HCM has the tracer');
  t.ok(hcmOf(snapshot, 'outbound:api:9001').tracing, 'outbound HCM has the tracer');
  t.ok(snapshot.resources.clusters.has(TRACING_CLUSTER), 'the collector cluster');

  const fromAgent = buildSnapshot(model([], POLICY).model, identities);
  t.same(
    [...snapshot.resources.listeners, ...snapshot.resources.clusters, ...snapshot.resources.routes],
    [...fromAgent.resources.listeners, ...fromAgent.resources.clusters, ...fromAgent.resources.routes],
    'the same resources as the same tracing in agent.yaml',
  );

  const agentWins = model([parsed(meshTelemetry('mesh'))], AGENT);
  t.same(agentWins.model.tracing, AGENT, 'agent.yaml tracing wins over the policy');
  t.equal(agentWins.tracingSource, 'agent.yaml');

  const none = model([]);
  t.equal(none.model.tracing, undefined);
  t.equal(none.tracingSource, undefined);
  const off = buildSnapshot(none.model, identities);
  t.notOk(hcmOf(off, 'inbound:web').tracing, 'no MeshTelemetry: no tracer inbound');
  t.notOk(hcmOf(off, 'outbound:api:9001').tracing, 'no tracer outbound');
  t.notOk(off.resources.clusters.has(TRACING_CLUSTER), 'no collector cluster');
});

const stored = (source: ReturnType<typeof meshTelemetry>, version = 1): StoredPolicy =>
  ({ kind: 'MeshTelemetry', name: source.metadata.name, version, revision: 3, source }) as StoredPolicy;

t.test('status: applied, or unused with the reason (agent.yaml tracing, a lower name, no workload)', async (t) => {
  const received = [stored(meshTelemetry('a')), stored(meshTelemetry('b'))];
  const parsedMap = new Map(received.map((r) => [policyKey(r), parsePolicyDocument(r.source)]));
  const served = new Map(received.map((r) => [policyKey(r), r]));
  const base = { received, parsed: parsedMap, rolledBack: new Map(), lastAccepted: served, workloads: [web], view, served };
  const states = (input: Parameters<typeof policyResourceStatuses>[0]) =>
    policyResourceStatuses(input).map((s) => `${s.name}:${s.state}${s.reason === undefined ? '' : `: ${s.reason}`}`);
  t.same(states(base), ['a:applied', 'b:unused: MeshTelemetry a takes effect (the lowest name wins)']);
  t.same(states({ ...base, localTracing: true }), [
    'a:unused: agent.yaml sets tracing on this node, which takes precedence over MeshTelemetry',
    'b:unused: agent.yaml sets tracing on this node, which takes precedence over MeshTelemetry',
  ]);
  const one = { ...base, received: [received[0] as StoredPolicy] };
  t.same(states({ ...one, workloads: [] }), ['a:unused: no workload on this node']);
});

const ackedAll = (s: Snapshot): AckedResources =>
  Object.fromEntries(RESOURCE_KINDS.map((k) => [k, new Map(s.versions[k])])) as unknown as AckedResources;

t.test('a NACK rolls the MeshTelemetry back to its last accepted version, or leaves it out', async (t) => {
  const source = new FakePolicySource();
  const life = new PolicyLifecycle(source, createLogger({ level: 'error', sink: { write: () => {} } }));
  const tracingOf = (docs: readonly PolicyDocument[]) => resolveTracing(undefined, docs).tracing;

  source.set([meshTelemetry('mesh')]);
  t.same(tracingOf(life.build()), POLICY);
  const s1 = snapshotOf({ clusters: { [TRACING_CLUSTER]: '1' } });
  life.servedAs(s1.version);
  life.acknowledged(s1, ackedAll(s1));

  source.set([meshTelemetry('mesh', { provider: 'zipkin', address: 'bad.collector:9411', samplingPercent: 50 })]);
  t.equal(tracingOf(life.build())?.host, 'bad.collector', 'version 2 is built');
  const s2 = snapshotOf({ clusters: { [TRACING_CLUSTER]: '2' } });
  life.servedAs(s2.version);
  t.ok(life.nacked('cluster tracing:collector: rejected', 1000), 'the NACK asks for a rebuild');
  t.same(tracingOf(life.build()), POLICY, 'version 1 is built again');
  const status = life.status([web], view).resources[0];
  t.match(status, { kind: 'MeshTelemetry', name: 'mesh', version: 2, state: 'rolled-back', servedVersion: 1 });
  t.match(status?.reason, /\(cluster tracing:collector: rejected\); serving version 1 instead/);

  // A MeshTelemetry never accepted is left out (tracing off is not a wider access).
  const fresh = new PolicyLifecycle(source, createLogger({ level: 'error', sink: { write: () => {} } }));
  source.set([meshTelemetry('mesh', { provider: 'zipkin', address: 'bad.collector:9411' })]);
  t.ok(tracingOf(fresh.build()));
  fresh.servedAs(snapshotOf({ clusters: { [TRACING_CLUSTER]: '3' } }).version);
  t.ok(fresh.nacked('rejected', 2000));
  t.equal(tracingOf(fresh.build()), undefined, 'left out: no tracer');
  t.match(fresh.status([web], view).resources[0], { state: 'rolled-back', reason: /left out: no earlier version was accepted/ });
});

t.test('mesh-agent status: the tracing in force and where it comes from', async (t) => {
  const dataPlane = idleDataPlaneStatus();
  const tracing = { provider: 'zipkin', address: 'zipkin.internal:9411', samplingPercent: 10, source: 'MeshTelemetry/mesh' };
  const doc = buildStatus(statusInput({ dataPlane: { ...dataPlane, tracing } }));
  t.same(doc.tracing, tracing);
  t.match(renderStatus(doc), 'tracing        zipkin zipkin.internal:9411, 10% sampled (from MeshTelemetry/mesh)\n');
  const off = buildStatus(statusInput({ dataPlane }));
  t.equal(off.tracing, undefined);
  t.notMatch(renderStatus(off), 'tracing ');
});
