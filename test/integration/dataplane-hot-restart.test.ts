/**
 * SIGHUP to the real `mesh-agent run`: an Envoy binary replaced in place (a
 * package upgrade) or a changed envoy.* setting is applied with a hot restart;
 * a request in flight during the restart completes and new requests work.
 */
import { copyFile, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { joinMesh } from '../../agent/identity/enroll.js';
import { agentFixture, agentStatus, startAgentProcess } from '../support/agent-process.js';
import { startConsulDev } from '../support/consul.js';
import { startTestControlPlane } from '../support/controlplane.js';
import { getJson, startEchoApp } from '../support/mesh-apps.js';
import { freePorts } from '../support/ports.js';
import { tools } from '../support/tools.js';
import { waitFor } from '../support/wait.js';

t.setTimeout(180_000);

const TD = 'example.org';

interface EnvoyState {
  state: string;
  pid: number;
  epoch: number;
  restarts: number;
}

t.test('SIGHUP: new Envoy binary or envoy.* setting -> hot restart, in-flight request completes', async (t) => {
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
    envoy: { binary: 'PLACEHOLDER', adminPort, concurrency: 1, drainTime: '2s' },
  });
  t.teardown(() => fx.remove());
  // The agent runs a copy of Envoy that the test can replace, like a package upgrade would.
  const binary = path.join(fx.base, 'envoy');
  await copyFile(envoy.path, binary);
  await writeFile(fx.configFile, (await readFile(fx.configFile, 'utf8')).replace('PLACEHOLDER', binary));
  await joinMesh({
    address: cp.cp.address,
    token: cp.token('vm-hup', [`spiffe://${TD}/ns/*/sa/*`]),
    bundlePem: cp.bundlePem(),
    dataDir: fx.dataDir,
  });
  await fx.writeWorkload(
    'web.yaml',
    `name: web\nport: ${web.port}\nmeshPort: ${webMesh}\nprotocol: http\nupstreams: [{ service: api, localPort: ${apiLocal} }]\n`,
  );
  await fx.writeWorkload('api.yaml', `name: api\nport: ${api.port}\nmeshPort: ${apiMesh}\nprotocol: http\n`);
  const agent = startAgentProcess(fx.configFile);
  t.teardown(() => agent.stop());
  await waitFor(() => getJson(apiLocal).catch(() => undefined), { timeoutMs: 40_000, what: 'traffic through the mesh' }).catch((err) => {
    throw new Error(`${(err as Error).message}\n${agent.output().slice(-3000)}`);
  });
  const envoyOf = async () => (await agentStatus<{ envoy: EnvoyState }>(fx.statusAddr)).envoy;
  const before = await envoyOf();
  t.equal(before.epoch, 0);

  // 1. Same binary, same config: SIGHUP changes nothing.
  agent.process.kill('SIGHUP');
  await waitFor(async () => (/Envoy binary and bootstrap unchanged/.test(agent.output()) ? true : undefined), {
    what: 'the unchanged reload',
  });
  t.equal((await envoyOf()).pid, before.pid, 'nothing changed: same Envoy');

  // 2. The binary replaced in place (new inode), with a request in flight.
  const inFlight = getJson(apiLocal, '/slow?delay=1500', 15_000);
  // In flight: through Envoy and at the app, which answers only after 1.5 s.
  await waitFor(async () => (api.inFlight() > 0 ? true : undefined), { what: 'the slow request to reach api' });
  await copyFile(envoy.path, `${binary}.new`);
  await rename(`${binary}.new`, binary);
  agent.process.kill('SIGHUP');
  const after = await waitFor(
    async () => {
      const e = await envoyOf();
      return e.epoch === 1 && e.state === 'running' ? e : undefined;
    },
    { timeoutMs: 30_000, what: 'the hot restart to epoch 1' },
  );
  t.not(after.pid, before.pid, 'a new Envoy process');
  t.equal(after.restarts, 0, 'a hot restart is not a crash restart');
  t.equal((await inFlight).app, 'api', 'the request in flight during the hot restart completed');
  t.equal((await getJson(apiLocal)).app, 'api', 'new requests go through the new epoch');

  // 3. A changed envoy.* setting (access log on) is applied the same way.
  const config = JSON.parse(await readFile(fx.configFile, 'utf8')) as { envoy: Record<string, unknown> };
  config.envoy.accessLog = true;
  await writeFile(fx.configFile, JSON.stringify(config));
  agent.process.kill('SIGHUP');
  await waitFor(async () => ((await envoyOf()).epoch === 2 ? true : undefined), { timeoutMs: 30_000, what: 'the hot restart to epoch 2' });
  t.equal((await getJson(apiLocal)).app, 'api', 'traffic after the second hot restart');
});
