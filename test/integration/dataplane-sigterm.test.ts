/**
 * SIGTERM to the real `mesh-agent run` process with the data plane on: the
 * workloads leave Consul, a request in flight through Envoy still completes
 * (drain), Envoy exits, and the agent exits 0.
 */
import { existsSync } from 'node:fs';
import t from 'tap';
import type { AgentConfig } from '../../agent/config/schema.js';
import { envoyBaseId } from '../../agent/envoy/agent-envoy.js';
import { envoySharedMemoryPath } from '../../agent/envoy/supervisor.js';
import { agentStatus } from '../support/agent-process.js';
import { processAlive } from '../support/child.js';
import { getJson } from '../support/mesh-apps.js';
import { meshHost, meshTraffic, runAgent, startMeshWorld } from '../support/mesh-world.js';
import { waitFor } from '../support/wait.js';

t.setTimeout(180_000);

const TD = 'example.org';

t.test('SIGTERM: deregistered, in-flight request completes, Envoy gone, exit 0', async (t) => {
  const w = await startMeshWorld(t, { trustDomain: TD });
  const { api, consul } = w;
  const { apiLocal } = w.ports;
  const host = await meshHost(t, {
    join: w.join,
    consulAddr: consul.httpAddr,
    nodeName: 'vm-term',
    config: { controlPlane: { address: w.cp.cp.address, caBundle: '/dev/null' } },
    envoy: { drainTime: '3s' },
    workloads: w.files(),
  });
  const { fx } = host;

  const agent = runAgent(t, host);
  const exited = new Promise<number | null>((resolve) => agent.process.once('exit', (code) => resolve(code)));
  await meshTraffic(apiLocal, { agent });
  const status = await agentStatus<{ envoy: { pid: number; state: string } }>(fx.statusAddr);
  const envoyPid = status.envoy.pid;
  t.ok(processAlive(envoyPid), `Envoy runs (pid ${envoyPid})`);
  const shm = envoySharedMemoryPath(envoyBaseId({ dataDir: fx.dataDir, envoy: {} } as AgentConfig));
  t.ok(existsSync(shm), 'Envoy holds its hot-restart shared memory');
  const registered = await consul.api<Record<string, unknown>>('/v1/agent/services');
  t.ok(Object.keys(registered).length >= 2, 'both workloads registered');

  const inFlight = getJson(apiLocal, '/slow?delay=1500', 10_000);
  // In flight: through Envoy and at the app, which answers only after 1.5 s.
  await waitFor(async () => (api.inFlight() > 0 ? true : undefined), { what: 'the slow request to reach api' });
  agent.process.kill('SIGTERM');
  const answer = await inFlight;
  t.equal(answer.app, 'api', 'the request in flight when SIGTERM arrived completed (drain)');
  t.equal(await exited, 0, 'exit 0');
  t.notOk(processAlive(envoyPid), 'Envoy is gone');
  t.notOk(existsSync(shm), 'and its shared memory file was removed');
  const left = await consul.api<Record<string, unknown>>('/v1/agent/services');
  t.same(Object.keys(left), [], 'workloads deregistered from Consul');
  t.match(agent.output(), /drain/i, 'the drain is logged');
});
