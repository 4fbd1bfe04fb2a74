/**
 * Mesh-wide tracing from policy, end to end with the real peers: a control
 * plane, a Consul dev agent, a real Zipkin, and two agents (each with its own
 * Envoy) whose agent.yaml has no `tracing`; vm-a runs web (access log on, so
 * the trace id of a request can be read), vm-b runs api. No request goes
 * through the mesh before the tracer is in (a connection between the Envoys
 * keeps the listener version that accepted it).
 * - `meshctl policy apply` of one MeshTelemetry (zipkin) reaches both agents:
 *   their Envoys run the tracer (admin /config_dump), status says where the
 *   tracing comes from and the resource is applied; a second MeshTelemetry
 *   is refused by meshctl with the field and the rule.
 * - A web -> api request makes one trace in Zipkin with the client span of
 *   vm-a's Envoy and the server span of vm-b's.
 * - `meshctl policy delete MeshTelemetry ...`: both Envoys' config no longer
 *   has the tracer nor the collector cluster, and requests still flow.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { request } from 'node:http';
import t from 'tap';
import { inboundAccessLogPath } from '../../agent/envoy/agent-envoy.js';
import { TRACING_CLUSTER } from '../../agent/xds/names.js';
import { type MeshNode, startMeshNode } from '../support/mesh-node.js';
import { startMeshPeers, startWebApi } from '../support/mesh-world.js';
import { applyPolicies, meshctl } from '../support/policy.js';
import { waitFor } from '../support/wait.js';
import { startZipkin, type ZipkinSpan } from '../support/zipkin.js';

t.setTimeout(300_000);

const peers = await startMeshPeers(t);
const zipkin = await startZipkin();
t.teardown(() => zipkin.stop());
const apps = await startWebApi(t);
const files = apps.files();

/** An agent (agent.yaml without tracing) with its Envoy, running these workload files. */
async function node(nodeName: string, workloads: Record<string, string>): Promise<MeshNode> {
  const n = await startMeshNode({ cp: peers.cp, consulAddr: peers.consul.httpAddr, nodeName, workloads });
  t.teardown(() => n.stop());
  return n;
}
const a = await node('vm-a', { 'web.yaml': `${files['web.yaml']}accessLog: true\n` });
const b = await node('vm-b', { 'api.yaml': files['api.yaml'] as string });

/** GET through web's upstream api on a new connection (one kept alive would stay on the listener it was accepted by). */
function get(urlPath: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port: apps.ports.apiLocal, path: urlPath, agent: false, timeout: 5_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', () => resolve(0));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
    req.end();
  });
}

const ZIPKIN_TRACER = 'envoy.tracers.zipkin';
/** Envoy's active listeners and clusters (the whole /config_dump also lists every extension Envoy has, tracers included). */
const dump = async (n: MeshNode) => {
  // Listeners: the active state only (an updated listener drains its old version for a while).
  const listeners = JSON.parse(await n.admin('/config_dump?resource=dynamic_listeners')) as { configs?: Array<{ active_state?: unknown }> };
  const active = (listeners.configs ?? []).map((c) => c.active_state ?? null);
  return `${JSON.stringify(active)}\n${await n.admin('/config_dump?resource=dynamic_active_clusters')}`;
};
/** Waits until the node's Envoy config has (or no longer has) the tracer and the collector cluster. */
const tracerIn = (n: MeshNode, present: boolean) =>
  waitFor(
    async () => {
      const config = await dump(n);
      return config.includes(ZIPKIN_TRACER) === present && config.includes(TRACING_CLUSTER) === present ? config : undefined;
    },
    { timeoutMs: 30_000, what: `${n.agent.status().node}'s Envoy config ${present ? 'with' : 'without'} the tracer` },
  );

// No request before the tracer is in: a connection between the Envoys opened earlier would stay on the
// listener version it was accepted by (without the tracer), as it does in production (see the docs).
await waitFor(
  async () =>
    (await a.admin('/clusters')).includes(`outbound:api@web::127.0.0.1:${apps.ports.apiMesh}::health_flags::healthy`) ? true : undefined,
  { timeoutMs: 60_000, what: "vm-a's Envoy to know api's instance" },
);

t.test('before: agent.yaml has no tracing, no MeshTelemetry: no tracer', async (t) => {
  for (const n of [a, b]) {
    const config = await dump(n);
    t.notMatch(config, ZIPKIN_TRACER, 'no tracer');
    t.notMatch(config, TRACING_CLUSTER, 'no collector cluster');
    t.equal(n.agent.status().tracing, undefined, 'status: no tracing');
  }
});

const YAML = `apiVersion: mesh.v1
kind: MeshTelemetry
metadata:
  name: mesh-tracing
spec:
  tracing:
    provider: zipkin
    address: ${zipkin.address}
    samplingPercent: 100
`;

t.test('meshctl policy apply of a MeshTelemetry: both Envoys run the tracer; a request makes one trace in Zipkin', async (t) => {
  const applied = await applyPolicies(peers.cp, YAML);
  t.same(applied.changes, [{ kind: 'MeshTelemetry', name: 'mesh-tracing', action: 'created' }]);
  for (const n of [a, b]) {
    const config = await tracerIn(n, true);
    t.match(config, zipkin.address.split(':')[0] as string, 'the collector cluster points at Zipkin');
    const status = await waitFor(
      async () => {
        const s = n.agent.status();
        const r = s.dataPlane?.policy.resources.find((x) => x.kind === 'MeshTelemetry');
        return r?.state === 'applied' && s.tracing !== undefined ? { r, tracing: s.tracing } : undefined;
      },
      { timeoutMs: 30_000, what: 'status: the MeshTelemetry applied' },
    );
    t.match(status.r, { name: 'mesh-tracing', version: 1, state: 'applied' });
    t.same(status.tracing, { provider: 'zipkin', address: zipkin.address, samplingPercent: 100, source: 'MeshTelemetry/mesh-tracing' });
    const types = n.agent.status().xds?.types ?? [];
    t.same(
      types.filter((x) => x.lastNack !== undefined),
      [],
      'Envoy rejected nothing',
    );
  }

  const second = await meshctl(peers.cp, ['policy', 'apply', '-f', '-'], YAML.replace('name: mesh-tracing', 'name: other'));
  t.equal(second.code, 1, 'a second MeshTelemetry is refused');
  t.match(second.stderr, 'MESH_E_POLICY_INVALID');
  t.match(second.stderr, 'metadata.name: conflicts with MeshTelemetry mesh-tracing (stored)');
  t.match(second.stderr, 'one MeshTelemetry per mesh');

  const path = `/mesh-traced-${randomBytes(4).toString('hex')}`;
  t.equal(await get(path), 200, 'web -> api answers 200 (the first request through the mesh)');
  const line = await waitFor(
    async () => {
      const text = await readFile(inboundAccessLogPath(a.dataDir), 'utf8').catch(() => '');
      return text
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .find((l) => l.path === path && l.direction === 'outbound');
    },
    { timeoutMs: 20_000, what: "web's outbound line in vm-a's access log" },
  );
  const traceId = String(line.trace_id);
  t.match(traceId, /^[0-9a-f]{32}$/, `a trace id: ${traceId}`);
  const spans = await waitFor(
    async () => {
      const found = await zipkin.trace(traceId);
      return found.some((s) => s.kind === 'CLIENT') && found.some((s) => s.kind === 'SERVER') ? found : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 500, what: `trace ${traceId} in Zipkin with a client and a server span` },
  );
  const client = spans.find((s) => s.kind === 'CLIENT') as ZipkinSpan;
  const server = spans.find((s) => s.kind === 'SERVER') as ZipkinSpan;
  t.equal(client.localEndpoint?.serviceName, 'mesh-agent.vm-a', "the client span comes from vm-a's Envoy");
  t.equal(server.localEndpoint?.serviceName, 'mesh-agent.vm-b', "the server span comes from vm-b's Envoy");
  t.equal(client.name, 'web -> api');
  t.equal(server.name, 'api');
  t.equal(server.parentId, client.id, "the server span is the client span's child");
});

t.test('meshctl policy delete: the tracer and the collector cluster leave both Envoys', async (t) => {
  const r = await meshctl(peers.cp, ['policy', 'delete', 'MeshTelemetry', 'mesh-tracing']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, 'MeshTelemetry/mesh-tracing deleted');
  for (const n of [a, b]) {
    const config = await tracerIn(n, false);
    t.notMatch(config, ZIPKIN_TRACER, 'no tracer in /config_dump');
    t.notMatch(config, TRACING_CLUSTER, 'no collector cluster');
    await waitFor(async () => (n.agent.status().tracing === undefined ? true : undefined), { what: 'status: no tracing' });
    t.equal(n.agent.status().dataPlane?.policy.resources.length, 0, 'no policy resource left');
  }
  t.equal(await get('/after-delete'), 200, 'web -> api still flows');
});
