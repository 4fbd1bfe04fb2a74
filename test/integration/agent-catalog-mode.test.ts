/**
 * consul.mode: catalog against the same dev server: no local agent
 * registration; the service is registered through the catalog API on the
 * agent's own node, the agent runs the check and reports it, and SIGTERM
 * deregisters.
 */
import { EventEmitter } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { runCommand } from '../../agent/run/run-command.js';
import { agentFixture, agentStatus } from '../support/agent-process.js';
import { startConsulDev } from '../support/consul.js';
import { waitFor } from '../support/wait.js';

t.setTimeout(120_000);

interface Entry {
  Node: { Node: string; Address: string; Meta: Record<string, string> };
  Service: { ID: string; Port: number; Meta: Record<string, string>; TaggedAddresses: Record<string, { Port: number }> };
  Checks: Array<{ Name: string; Status: string; Output: string }>;
}

t.test('catalog mode registers, reports the agent-run check, deregisters', async (t) => {
  const dev = await startConsulDev();
  t.teardown(() => dev.stop());
  let healthy = true;
  const server = http.createServer((_req, res) => {
    res.writeHead(healthy ? 200 : 503);
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise((r) => server.close(r)));
  const port = (server.address() as AddressInfo).port;
  const fx = await agentFixture(dev.httpAddr, { nodeName: 'vm-catalog-1', consul: { mode: 'catalog' }, zone: 'rack-7' });
  t.teardown(() => fx.remove());
  await fx.writeWorkload(
    'web.yaml',
    `name: web\nport: ${port}\nprotocol: http2\ncheck: { http: "http://127.0.0.1:${port}/", interval: 500ms }\n`,
  );

  const signals = new EventEmitter();
  const sink = { write: () => true };
  const done = runCommand({ signals: signals as unknown as NodeJS.Process, exit: () => {} }).run({
    values: { config: fx.configFile },
    positionals: [],
    io: { stdout: sink, stderr: sink },
  });

  const entries = await waitFor(
    async () => {
      const e = await dev.api<Entry[]>('/v1/health/service/web?passing=true');
      return e.length === 1 ? e : undefined;
    },
    { timeoutMs: 20_000, what: 'web passing through the catalog API' },
  );
  const entry = entries[0] as Entry;
  t.equal(entry.Node.Node, 'vm-catalog-1', 'registered on the agent node, not the Consul agent node');
  t.equal(entry.Node.Address, '127.0.0.1');
  t.equal(entry.Node.Meta['mesh-agent'], 'catalog');
  t.equal(entry.Service.ID, 'web-vm-catalog-1');
  t.equal(entry.Service.TaggedAddresses.mesh?.Port, port + 10000);
  t.match(entry.Service.Meta, { mesh_protocol: 'http2', mesh_node: 'vm-catalog-1', mesh_zone: 'rack-7' });
  t.match(entry.Checks, [{ Name: 'web http check', Status: 'passing', Output: /200/ }]);
  const local = await dev.api<Record<string, unknown>>('/v1/agent/services');
  t.same(Object.keys(local), [], 'nothing registered with the local Consul agent');

  healthy = false;
  await waitFor(
    async () => {
      const checks = await dev.api<Array<{ Status: string }>>('/v1/health/service/web');
      return checks.length === 1 && (checks[0] as unknown as Entry).Checks[0]?.Status === 'critical' ? true : undefined;
    },
    { timeoutMs: 10_000, what: 'the agent to report critical' },
  );
  const status = await agentStatus<{ consul: { mode: string }; workloads: Array<{ check: string }> }>(fx.statusAddr);
  t.equal(status.consul.mode, 'catalog');
  t.equal(status.workloads[0]?.check, 'critical');

  signals.emit('SIGTERM', 'SIGTERM');
  t.equal(await done, 0);
  const nodes = await dev.api<unknown[]>('/v1/catalog/service/web');
  t.same(nodes, [], 'deregistered from the catalog');
});
