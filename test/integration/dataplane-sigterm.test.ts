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
import { joinMesh } from '../../agent/identity/enroll.js';
import { agentFixture, agentStatus, startAgentProcess } from '../support/agent-process.js';
import { processAlive } from '../support/child.js';
import { startConsulDev } from '../support/consul.js';
import { startTestControlPlane } from '../support/controlplane.js';
import { getJson, startEchoApp } from '../support/mesh-apps.js';
import { freePorts } from '../support/ports.js';
import { tools } from '../support/tools.js';
import { waitFor } from '../support/wait.js';

t.setTimeout(180_000);

const TD = 'example.org';

t.test('SIGTERM: deregistered, in-flight request completes, Envoy gone, exit 0', async (t) => {
  const cp = await startTestControlPlane({ trustDomain: TD });
  t.teardown(() => cp.stop());
  const consul = await startConsulDev();
  t.teardown(() => consul.stop());
  const web = await startEchoApp('web');
  const api = await startEchoApp('api');
  t.teardown(() => Promise.all([web.close(), api.close()]));
  const [webMesh, apiMesh, apiLocal, adminPort] = (await freePorts(4)) as [number, number, number, number];
  const { envoy } = await tools();
  const fx = await agentFixture(consul.httpAddr, {
    dataPlane: { enabled: true },
    controlPlane: { address: cp.cp.address, caBundle: '/dev/null' },
    envoy: { binary: envoy.path, adminPort, concurrency: 1, drainTime: '3s' },
  });
  t.teardown(() => fx.remove());
  await joinMesh({
    address: cp.cp.address,
    token: cp.token('vm-term', [`spiffe://${TD}/ns/*/sa/*`]),
    bundlePem: cp.bundlePem(),
    dataDir: fx.dataDir,
  });
  await fx.writeWorkload(
    'web.yaml',
    `name: web\nport: ${web.port}\nmeshPort: ${webMesh}\nprotocol: http\nupstreams: [{ service: api, localPort: ${apiLocal} }]\n`,
  );
  await fx.writeWorkload('api.yaml', `name: api\nport: ${api.port}\nmeshPort: ${apiMesh}\nprotocol: http\n`);

  const agent = startAgentProcess(fx.configFile);
  const exited = new Promise<number | null>((resolve) => agent.process.once('exit', (code) => resolve(code)));
  t.teardown(() => agent.stop());
  await waitFor(() => getJson(apiLocal).catch(() => undefined), { timeoutMs: 40_000, what: 'traffic through the mesh' }).catch((err) => {
    throw new Error(`${(err as Error).message}\n${agent.output().slice(-3000)}`);
  });
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
