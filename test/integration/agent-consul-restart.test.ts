/**
 * Consul stopped and started again (same ports, empty state) while the agent
 * runs: the view during the outage is the last known one, registrations come
 * back and watches resume. Then an agent started while Consul is down serves
 * the catalog persisted in dataDir. Runs `mesh-agent run` in-process with
 * injected signals.
 */
import { EventEmitter } from 'node:events';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import t from 'tap';
import { runCommand } from '../../agent/run/run-command.js';
import { agentFixture, agentStatus } from '../support/agent-process.js';
import { restartableConsul } from '../support/consul.js';
import { waitFor } from '../support/wait.js';

t.setTimeout(180_000);

interface Status {
  consul: { state: string };
  workloads: Array<{ name: string; registration: string }>;
  upstreams: Array<{ service: string; instances: number; source: string; watch: string }>;
  catalogVersion: number;
}

function startRun(configFile: string) {
  const signals = new EventEmitter();
  let logs = '';
  const io = { stdout: { write: (s: string) => (logs += s) }, stderr: { write: (s: string) => (logs += s) } };
  const done = runCommand({ signals: signals as unknown as NodeJS.Process, exit: () => {} }).run({
    values: { config: configFile },
    positionals: [],
    io,
  });
  return { signals, done, logs: () => logs };
}

t.test('restart of Consul: last known view during the outage, then everything back', async (t) => {
  const consul = await restartableConsul();
  await consul.start();
  t.teardown(() => consul.stop());
  const server = net.createServer((s) => s.end());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise((r) => server.close(r)));
  const port = (server.address() as net.AddressInfo).port;
  const fx = await agentFixture(consul.httpAddr);
  t.teardown(() => fx.remove());
  await fx.writeWorkload('api.yaml', `name: api\nport: ${port}\ncheck: { tcp: "127.0.0.1:${port}", interval: 1s }\n`);
  await fx.writeWorkload(
    'web.yaml',
    `name: web\nport: ${port + 1 > 65535 ? port - 1 : port + 1}\nmeshPort: 15400\nupstreams: [{ service: api, localPort: 9001 }]\n`,
  );

  const agent = startRun(fx.configFile);
  const status = () => agentStatus<Status>(fx.statusAddr);
  const ready = await waitFor(
    async () => {
      const s = await status();
      return s.upstreams[0]?.instances === 1 && s.workloads.every((w) => w.registration === 'registered') ? s : undefined;
    },
    { timeoutMs: 30_000, what: 'api healthy in the view' },
  );
  t.equal(ready.consul.state, 'connected');

  await consul.stop();
  const outage = await waitFor(
    async () => {
      const s = await status();
      return s.consul.state === 'unreachable' && s.upstreams[0]?.watch === 'failing' ? s : undefined;
    },
    { timeoutMs: 15_000, what: 'the agent to notice the outage' },
  );
  t.equal(outage.upstreams[0]?.instances, 1, 'the view during the outage is the last known one');
  t.equal(outage.catalogVersion, ready.catalogVersion, 'no new view during the outage');
  t.equal(agent.logs().split('consul unreachable').length - 1, 1, 'logged once per state change');

  await consul.start();
  const back = await waitFor(
    async () => {
      const ids = Object.keys(await consul.api<Record<string, unknown>>('/v1/agent/services')).sort();
      return ids.length === 2 ? ids : undefined;
    },
    { timeoutMs: 15_000, what: 'registrations restored in the restarted Consul' },
  );
  const { nodeName } = JSON.parse(await readFile(fx.configFile, 'utf8')) as { nodeName: string };
  t.same(back, [`api-${nodeName}`, `web-${nodeName}`]);
  const resumed = await waitFor(
    async () => {
      const s = await status();
      return s.consul.state === 'connected' && s.upstreams[0]?.watch === 'ok' && s.upstreams[0]?.instances === 1 ? s : undefined;
    },
    { timeoutMs: 20_000, what: 'the watch to resume with the re-registered api' },
  );
  t.equal(resumed.upstreams[0]?.source, 'consul');
  t.match(agent.logs(), /consul reachable/);
  t.match(agent.logs(), /catalog watch resumed/);

  agent.signals.emit('SIGHUP');
  t.match(agent.logs(), /SIGHUP: reloading the configuration file and workloads/, 'SIGHUP reloads');
  agent.signals.emit('SIGTERM', 'SIGTERM');
  t.equal(await agent.done, 0, 'exit code 0');
  t.same(Object.keys(await consul.api<Record<string, unknown>>('/v1/agent/services')), [], 'deregistered on SIGTERM');

  // Consul down, agent restarted: the persisted view is served.
  await consul.stop();
  const again = startRun(fx.configFile);
  const persisted = await waitFor(
    async () => {
      const s = await status();
      return s.upstreams[0]?.source === 'disk' && s.consul.state === 'unreachable' ? s : undefined;
    },
    { timeoutMs: 15_000, what: 'the restarted agent status' },
  );
  t.match(persisted.upstreams[0], { service: 'api', instances: 1, source: 'disk' }, 'last known catalog from dataDir');
  again.signals.emit('SIGTERM', 'SIGTERM');
  t.equal(await again.done, 0);
});
