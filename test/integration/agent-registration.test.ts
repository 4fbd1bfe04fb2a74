/**
 * The real `mesh-agent run` (child process) against the real Consul: two
 * workloads are registered with meta and checks, the check turns critical
 * when the app stops answering, and SIGTERM deregisters before exit 0.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { run } from '../../lib/exec.js';
import { agentFixture, agentStatus, startAgentProcess } from '../support/agent-process.js';
import { startConsulDev } from '../support/consul.js';
import { tools } from '../support/tools.js';
import { waitFor } from '../support/wait.js';

t.setTimeout(180_000);

async function app(): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((_req, res) => res.end('ok'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

interface HealthEntry {
  Node: { Node: string };
  Service: { ID: string; Port: number; Meta: Record<string, string>; Tags: string[]; TaggedAddresses: Record<string, { Port: number }> };
  Checks: Array<{ Name: string; Status: string; ServiceID: string }>;
}

t.test('two workloads registered; check goes critical; SIGTERM deregisters', async (t) => {
  const dev = await startConsulDev();
  t.teardown(() => dev.stop());
  const [web, api] = [await app(), await app()];
  t.teardown(() => Promise.all([web.close(), api.close()]));
  const fx = await agentFixture(dev.httpAddr);
  t.teardown(() => fx.remove());
  await fx.writeWorkload(
    'web.yaml',
    `name: web\nport: ${web.port}\nprotocol: http\nserviceAccount: web\ntags: [v1]\nmeta: { version: v1 }\n` +
      `check: { http: "http://127.0.0.1:${web.port}/healthz", interval: 1s, timeout: 1s }\nupstreams: [{ service: api, localPort: 9001 }]\n`,
  );
  await fx.writeWorkload(
    'api.json',
    JSON.stringify({
      name: 'api',
      port: api.port,
      meshPort: 15301,
      protocol: 'grpc',
      check: { tcp: `127.0.0.1:${api.port}`, interval: '1s' },
    }),
  );

  const agent = startAgentProcess(fx.configFile);
  const exited = new Promise<number | null>((resolve) => agent.process.once('exit', (code) => resolve(code)));
  t.teardown(() => agent.stop());

  const healthy = await waitFor(
    async () => {
      const entries = await dev.api<HealthEntry[]>('/v1/health/service/web?passing=true');
      return entries.length === 1 ? entries : undefined;
    },
    { timeoutMs: 30_000, what: `web to be registered and passing\n${agent.output()}` },
  );
  const entry = healthy[0] as HealthEntry;
  t.equal(entry.Node.Node, dev.nodeName, 'registered with the local Consul agent');
  t.equal(entry.Service.Port, web.port, 'app port');
  t.equal(entry.Service.TaggedAddresses.mesh?.Port, web.port + 10000, 'mesh port as a tagged address');
  t.same(entry.Service.Tags, ['v1']);
  t.match(entry.Service.Meta, {
    version: 'v1',
    mesh_spiffe_id: 'spiffe://example.org/ns/default/sa/web',
    mesh_protocol: 'http',
    mesh_port: String(web.port + 10000),
  });
  t.ok(
    entry.Checks.some((c) => c.Name === 'web http check' && c.Status === 'passing'),
    'the workload check is passing',
  );

  const apiEntries = await waitFor(
    async () => {
      const e = await dev.api<HealthEntry[]>('/v1/health/service/api?passing=true');
      return e.length === 1 ? e : undefined;
    },
    { what: 'api passing' },
  );
  t.match(apiEntries[0]?.Service.Meta, {
    mesh_protocol: 'grpc',
    mesh_port: '15301',
    mesh_spiffe_id: 'spiffe://example.org/ns/default/sa/api',
  });

  const { consul } = await tools();
  const cli = await run(consul.path, ['catalog', 'services', `-http-addr=${dev.httpAddr}`, '-tags']);
  t.equal(cli.code, 0);
  t.match(cli.stdout, /^web\s+v1$/m, '`consul catalog services` shows web with its tag');
  t.match(cli.stdout, /^api\b/m);

  const status = await agentStatus<{
    workloads: Array<{ name: string; registration: string }>;
    upstreams: Array<{ service: string; instances: number }>;
  }>(fx.statusAddr);
  t.same(status.workloads.map((w) => [w.name, w.registration]).sort(), [
    ['api', 'registered'],
    ['web', 'registered'],
  ]);
  await waitFor(
    async () => {
      const s = await agentStatus<{ upstreams: Array<{ service: string; instances: number }> }>(fx.statusAddr);
      return s.upstreams[0]?.instances === 1 ? true : undefined;
    },
    { what: 'the api upstream to show one instance in status' },
  );

  await web.close();
  await waitFor(
    async () => {
      const checks = await dev.api<Array<{ Status: string; ServiceName: string }>>('/v1/health/checks/web');
      return checks.some((c) => c.Status === 'critical') ? true : undefined;
    },
    { timeoutMs: 15_000, what: 'the web check to turn critical' },
  );
  t.pass('the check turned critical when the app stopped answering');

  agent.process.kill('SIGTERM');
  t.equal(await exited, 0, 'exit 0 after SIGTERM');
  const services = await dev.api<Record<string, string[]>>('/v1/catalog/services');
  t.same(Object.keys(services).sort(), ['consul'], 'both workloads deregistered');
  t.match(agent.output(), /"msg":"deregistered"/);
});
