/**
 * Tracing and access logs end to end with the real peers: a control plane
 * (policy applied with the real `meshctl`), a Consul dev agent, a real Zipkin
 * (Maven Central's exec jar on the machine's Java), and two agents, each with
 * its own Envoy and `tracing: { provider: zipkin }`:
 * - vm-a runs web, whose workload file switches its access log on (agent
 *   default off, lines to the default file); web calls api through
 *   127.0.0.1:apiLocal;
 * - vm-b runs api with the agent-wide access log on, to stdout (the agent logs
 *   each line as `msg: "access"`).
 * A web -> api request makes one trace with a client span from vm-a's Envoy
 * and a server span from vm-b's, read back through Zipkin's API with the
 * services named; its trace id is the one both access log lines carry. An
 * AuthorizationPolicy denying web on /admin makes a 403 whose lines name the
 * rule.
 */

import { randomBytes } from 'node:crypto';
import { readFile, rename } from 'node:fs/promises';
import t from 'tap';
import { inboundAccessLogPath } from '../../agent/envoy/agent-envoy.js';
import { startEchoApp } from '../support/mesh-apps.js';
import { type MeshNode, startMeshNode } from '../support/mesh-node.js';
import { startMeshPeers, startWebApi, TRUST_DOMAIN } from '../support/mesh-world.js';
import { startOtlpSink } from '../support/otlp-sink.js';
import { applyPolicies } from '../support/policy.js';
import { freePorts } from '../support/ports.js';
import { waitFor } from '../support/wait.js';
import { startZipkin, type ZipkinSpan } from '../support/zipkin.js';

t.setTimeout(300_000);

const WEB = `spiffe://${TRUST_DOMAIN}/ns/default/sa/web`;
const API = `spiffe://${TRUST_DOMAIN}/ns/default/sa/api`;
type Line = Record<string, unknown>;

const peers = await startMeshPeers(t);
const zipkin = await startZipkin();
t.teardown(() => zipkin.stop());
const apps = await startWebApi(t);
const files = apps.files();
const tracing = { provider: 'zipkin', address: zipkin.address, samplingPercent: 100 };

const a = await startMeshNode({
  cp: peers.cp,
  consulAddr: peers.consul.httpAddr,
  nodeName: 'vm-a',
  workloads: { 'web.yaml': `${files['web.yaml']}accessLog: true\n` },
  extraConfig: { tracing },
});
t.teardown(() => a.stop());
const b = await startMeshNode({
  cp: peers.cp,
  consulAddr: peers.consul.httpAddr,
  nodeName: 'vm-b',
  workloads: { 'api.yaml': files['api.yaml'] as string },
  extraConfig: { tracing, accessLog: { enabled: true, output: 'stdout' } },
});
t.teardown(() => b.stop());

async function get(urlPath: string): Promise<number> {
  try {
    const res = await fetch(`http://127.0.0.1:${apps.ports.apiLocal}${urlPath}`, { signal: AbortSignal.timeout(5_000) });
    await res.text();
    return res.status;
  } catch {
    return 0;
  }
}

/** vm-a's access log file, parsed. */
async function fileLines(n: MeshNode): Promise<Line[]> {
  const text = await readFile(inboundAccessLogPath(n.dataDir), 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Line);
}

/** The access lines vm-b's agent logged from Envoy's stdout. */
function stdoutLines(n: MeshNode): Line[] {
  return n.logs
    .map((l) => JSON.parse(l) as { msg?: string; access?: Line })
    .filter((r) => r.msg === 'access' && r.access !== undefined)
    .map((r) => r.access as Line);
}

const lineFor = (lines: () => Promise<Line[]> | Line[], path: string, direction: string, what: string, status = 200) =>
  waitFor(async () => (await lines()).find((l) => l.path === path && l.direction === direction && l.status === status), {
    timeoutMs: 20_000,
    what,
  });

await waitFor(async () => ((await get('/')) === 200 ? true : undefined), { timeoutMs: 60_000, what: 'web reaches api through the mesh' });

t.test('a web -> api request: one trace in Zipkin with spans from both Envoys; allowed lines carry every field', async (t) => {
  const path = `/traced-${randomBytes(4).toString('hex')}`;
  t.equal(await get(path), 200, 'web -> api answers 200');

  const out = await lineFor(() => fileLines(a), path, 'outbound', "web's outbound line in vm-a's access log file");
  const traceId = String(out.trace_id);
  t.match(traceId, /^[0-9a-f]{32}$/, `a 128-bit trace id: ${traceId}`);
  t.match(out, {
    kind: 'access',
    direction: 'outbound',
    listener: `outbound:api:${apps.ports.apiLocal}`,
    service: 'api',
    caller: 'web',
    peer: API,
    upstream_host: `127.0.0.1:${apps.ports.apiMesh}`,
    upstream_cluster: 'outbound:api@web',
    method: 'GET',
    status: 200,
    flags: '-',
  });
  t.type(out.duration_ms, 'number', 'duration');
  t.type(out.bytes_received, 'number', 'bytes received (the request body)');
  t.ok(Number(out.bytes_sent) > 0, `bytes sent back to web: ${out.bytes_sent}`);
  t.pass(`vm-a outbound line: ${JSON.stringify(out)}`);

  const inb = await lineFor(() => stdoutLines(b), path, 'inbound', "api's inbound line in vm-b's agent log (Envoy's stdout)");
  t.match(inb, {
    kind: 'access',
    direction: 'inbound',
    listener: 'inbound:api',
    service: 'api',
    peer: WEB,
    upstream_cluster: 'inbound:api:app',
    status: 200,
    flags: '-',
    trace_id: traceId,
  });
  t.pass(`vm-b inbound line: ${JSON.stringify(inb)}`);

  const spans = await waitFor(
    async () => {
      const found = await zipkin.trace(traceId);
      return found.some((s) => s.kind === 'CLIENT') && found.some((s) => s.kind === 'SERVER') ? found : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 500, what: `trace ${traceId} in Zipkin with a client and a server span` },
  );
  t.pass(`spans: ${JSON.stringify(spans)}`);
  t.ok(
    spans.every((s) => s.traceId === traceId),
    'every span belongs to the one trace',
  );
  const client = spans.find((s) => s.kind === 'CLIENT') as ZipkinSpan;
  const server = spans.find((s) => s.kind === 'SERVER') as ZipkinSpan;
  t.equal(client.localEndpoint?.serviceName, 'mesh-agent.vm-a', "the client span comes from vm-a's Envoy");
  t.equal(server.localEndpoint?.serviceName, 'mesh-agent.vm-b', "the server span comes from vm-b's Envoy");
  t.equal(client.name, 'web -> api', 'the client span names caller and service');
  t.equal(server.name, 'api', 'the server span names the service');
  t.match(client.tags, { 'mesh.service': 'api', 'mesh.caller': 'web', 'mesh.direction': 'outbound' });
  t.match(server.tags, { 'mesh.service': 'api', 'mesh.direction': 'inbound' });
  t.equal(server.parentId, client.id, "the server span is the client span's child (the context crossed the mesh hop)");
  const services = await zipkin.services();
  t.ok(services.includes('mesh-agent.vm-a') && services.includes('mesh-agent.vm-b'), `Zipkin lists both: ${services.join(', ')}`);
});

t.test('a request an AuthorizationPolicy denies: 403, and the lines name the rule', async (t) => {
  await applyPolicies(
    peers.cp,
    JSON.stringify([
      {
        apiVersion: 'mesh.v1',
        kind: 'AuthorizationPolicy',
        metadata: { name: 'api-authz' },
        spec: {
          target: { service: 'api' },
          defaultAction: 'allow',
          rules: [{ name: 'no-admin', action: 'deny', from: { ids: [WEB] }, http: { paths: [{ prefix: '/admin' }] } }],
        },
      },
    ]),
  );
  const path = `/admin/${randomBytes(4).toString('hex')}`;
  await waitFor(async () => ((await get(path)) === 403 ? true : undefined), {
    timeoutMs: 30_000,
    what: 'the policy to reach vm-b and deny web on /admin',
  });
  // Requests sent before the policy arrived were allowed (same path, 200): the 403 line is the one.
  const inb = await lineFor(() => stdoutLines(b), path, 'inbound', "the denied request in vm-b's log", 403);
  t.match(inb, {
    direction: 'inbound',
    listener: 'inbound:api',
    peer: WEB,
    status: 403,
    details: 'rbac_access_denied_matched_policy[api-authz.no-admin]',
    // The RBAC filter's dynamic metadata: the deny set (stat prefix authz_deny_) names the rule too.
    rbac: { authz_deny_enforced_effective_policy_id: 'api-authz.no-admin', authz_deny_enforced_engine_result: 'denied' },
    trace_id: /^[0-9a-f]{32}$/,
  });
  t.pass(`vm-b denied line: ${JSON.stringify(inb)}`);
  const out = await lineFor(() => fileLines(a), path, 'outbound', "the denied request in vm-a's file", 403);
  t.match(out, { direction: 'outbound', peer: API, status: 403, upstream_cluster: 'outbound:api@web', trace_id: inb.trace_id });
  t.equal(await get('/ok'), 200, 'other paths are still allowed');
});

t.test('rotation: after the file is moved away, POST /reopen_logs makes Envoy write a new one', async (t) => {
  const file = inboundAccessLogPath(a.dataDir);
  const rotated = `${file}.1`;
  await rename(file, rotated);
  await a.adminPost('/reopen_logs');
  const path = `/rotated-${randomBytes(4).toString('hex')}`;
  t.equal(await get(path), 200);
  const line = await lineFor(() => fileLines(a), path, 'outbound', 'the line in the reopened file');
  t.equal(line.path, path, 'the new file has the new line');
  t.notMatch(await readFile(rotated, 'utf8'), path, 'the rotated file does not');
});

t.test('opentelemetry: Envoy accepts the config and exports spans over gRPC naming the service', async (t) => {
  const sink = await startOtlpSink();
  t.teardown(() => sink.stop());
  const solo = await startEchoApp('solo');
  t.teardown(() => solo.close());
  const [soloMesh, soloApi] = (await freePorts(2)) as [number, number];
  const c = await startMeshNode({
    cp: peers.cp,
    consulAddr: peers.consul.httpAddr,
    nodeName: 'vm-c',
    workloads: {
      'solo.yaml': `name: solo\nport: ${solo.port}\nmeshPort: ${soloMesh}\nprotocol: http\naccessLog: true\nupstreams: [{ service: api, localPort: ${soloApi} }]\n`,
    },
    extraConfig: { tracing: { provider: 'opentelemetry', address: sink.address, samplingPercent: 100 } },
  });
  t.teardown(() => c.stop());
  const status = async () => {
    try {
      const res = await fetch(`http://127.0.0.1:${soloApi}/otel`, { signal: AbortSignal.timeout(5_000) });
      await res.text();
      return res.status;
    } catch {
      return 0;
    }
  };
  await waitFor(async () => ((await status()) === 200 ? true : undefined), { timeoutMs: 60_000, what: 'solo reaches api' });
  const dump = await c.admin('/config_dump?resource=dynamic_listeners');
  t.match(dump, 'envoy.tracers.opentelemetry', "vm-c's Envoy runs (ACKed) listeners with the OpenTelemetry tracer");
  const types = c.agent.status().xds?.types ?? [];
  t.same(
    types.filter((x) => x.lastNack !== undefined),
    [],
    'and rejected nothing',
  );
  t.ok(types.find((x) => x.type === 'LDS')?.ackedVersion, 'LDS acked');
  const line = await lineFor(() => fileLines(c), '/otel', 'outbound', "solo's outbound line");
  const traceId = Buffer.from(String(line.trace_id), 'hex');
  t.equal(traceId.length, 16, `a W3C trace id: ${line.trace_id}`);
  const request = await waitFor(async () => sink.requests.find((r) => r.includes(traceId)), {
    timeoutMs: 30_000,
    intervalMs: 500,
    what: `an OTLP export carrying trace ${line.trace_id}`,
  });
  t.ok(request.includes(Buffer.from('service.name')) && request.includes(Buffer.from('solo')), 'the resource names the service (solo)');
  t.ok(request.includes(Buffer.from('solo -> api')), 'the span is named solo -> api');
});
