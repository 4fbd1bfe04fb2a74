/**
 * SIGHUP to the real `mesh-agent run`: an Envoy binary replaced in place (a
 * package upgrade) or a changed envoy.* setting is applied with a hot restart;
 * a request in flight during the restart completes and new requests work.
 */
import { copyFile, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { agentStatus } from '../support/agent-process.js';
import { getJson } from '../support/mesh-apps.js';
import { meshHost, meshTraffic, runAgent, startMeshWorld } from '../support/mesh-world.js';
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
  const w = await startMeshWorld(t, { trustDomain: TD });
  const { api } = w;
  const { apiLocal } = w.ports;
  const { envoy } = await tools();
  const host = await meshHost(t, {
    join: w.join,
    consulAddr: w.consul.httpAddr,
    nodeName: 'vm-hup',
    envoy: { binary: 'PLACEHOLDER', drainTime: '2s' },
    workloads: w.files(),
  });
  const { fx } = host;
  // The agent runs a copy of Envoy that the test can replace, like a package upgrade would.
  const binary = path.join(fx.base, 'envoy');
  await copyFile(envoy.path, binary);
  await writeFile(fx.configFile, (await readFile(fx.configFile, 'utf8')).replace('PLACEHOLDER', binary));
  const agent = runAgent(t, host);
  await meshTraffic(apiLocal, { agent });
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
