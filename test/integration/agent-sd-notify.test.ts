/**
 * The real `mesh-agent run` (data plane on: real control plane, Consul and
 * Envoy) under a stand-in for systemd's notify socket: READY=1 comes only
 * once Envoy runs and has acknowledged its first snapshot (status says so at
 * that moment); SIGHUP with a malformed agent.yaml brings RELOADING=1, then
 * READY=1 saying the reload was rejected while the agent keeps serving;
 * SIGTERM brings STOPPING=1. Skipped, with the reason, without
 * systemd-notify or python3.
 */
import { readFile, writeFile } from 'node:fs/promises';
import t from 'tap';
import { agentStatus, startAgentProcess } from '../support/agent-process.js';
import { childEnv, startChild } from '../support/child.js';
import { meshHost, meshTraffic, startMeshWorld } from '../support/mesh-world.js';
import { notifySkipReason, startNotifyReceiver } from '../support/notify-receiver.js';

t.setTimeout(180_000);
const skip = await notifySkipReason();

interface Doc {
  envoy: { state: string };
  xds: { types: Array<{ type: string; ackedVersion?: string }> };
  config?: { state: string; error?: { code: string; issues?: Array<{ path: string }> } };
}

t.test('READY=1 once Envoy acknowledged its first snapshot; reload rejected; STOPPING=1', { skip: skip ?? false }, async (t) => {
  const receiver = await startNotifyReceiver(t);
  const w = await startMeshWorld(t, { trustDomain: 'example.org' });
  const host = await meshHost(t, {
    join: w.join,
    consulAddr: w.consul.httpAddr,
    nodeName: 'vm-notify',
    config: { controlPlane: { address: w.cp.cp.address, caBundle: '/dev/null' } },
    workloads: w.files(),
  });
  const agent = startAgentProcess(host.fx.configFile, (command, args) =>
    startChild(command, args, { env: { ...childEnv(), NOTIFY_SOCKET: receiver.socket } }),
  );
  t.teardown(() => agent.stop());
  const exited = new Promise<number | null>((resolve) => agent.process.once('exit', (code) => resolve(code)));

  const ready = await receiver.next(/^READY=1/);
  const atReady = await agentStatus<Doc>(host.fx.statusAddr);
  t.match(ready, /^READY=1 \| STATUS=serving 2 workload\(s\)/);
  t.equal(atReady.envoy.state, 'running', 'Envoy runs when READY=1 is sent');
  for (const type of ['CDS', 'LDS'])
    t.ok(atReady.xds.types.find((x) => x.type === type)?.ackedVersion, `${type} acknowledged when READY=1 is sent`);
  await meshTraffic(w.ports.apiLocal, { agent });

  const good = await readFile(host.fx.configFile, 'utf8');
  await writeFile(host.fx.configFile, `${good.trimEnd().slice(0, -1)}, "transparentProxy": { "enabled": "yes" } }\n`);
  const from = receiver.lines.length;
  agent.process.kill('SIGHUP');
  await receiver.next(/^RELOADING=1/, from);
  t.match(
    await receiver.next(/^READY=1/, from),
    new RegExp(`^READY=1 \\| STATUS=serving 2 workload\\(s\\).*; reload rejected: MESH_E_CONFIG_INVALID in ${host.fx.configFile}`),
  );
  const rejected = await agentStatus<Doc>(host.fx.statusAddr);
  t.match(rejected.config, { state: 'rejected', error: { code: 'MESH_E_CONFIG_INVALID', issues: [{ path: 'transparentProxy.enabled' }] } });
  t.match(await meshTraffic(w.ports.apiLocal, { agent }), { app: 'api' }, 'still serving with the previous configuration');

  agent.process.kill('SIGTERM');
  await receiver.next(/^STOPPING=1/);
  t.equal(await exited, 0);
});
