/**
 * Health that tells the truth, against the real control plane, Consul and
 * Envoy, with real `mesh-agent run` processes:
 * - an agent restarted while the control plane is frozen (SIGSTOP) serves its
 *   stored SVIDs, and traffic flows again (how soon: bench/agent-restart.ts);
 * - a workload whose SVID the control plane refuses is registered critical in
 *   Consul with the reason, and a caller on another host is never sent to it:
 *   every request goes to the instance that serves.
 */
import path from 'node:path';
import t from 'tap';
import { agentStatus } from '../support/agent-process.js';
import { processAlive } from '../support/child.js';
import { startConsulDev } from '../support/consul.js';
import { adminJoinSource, spawnControlPlane } from '../support/controlplane.js';
import { type EchoAnswer, getJson, startEchoApp } from '../support/mesh-apps.js';
import { meshHost, meshTraffic, runAgent, startMeshPeers, startWebApi } from '../support/mesh-world.js';
import { freePorts } from '../support/ports.js';
import { tempDir } from '../support/temp-dir.js';
import { httpGet, waitFor } from '../support/wait.js';
import { type WorkloadFile, workloadYaml } from '../support/workload-files.js';

t.setTimeout(300_000);

const TD = 'example.org';
const id = (sa: string) => `spiffe://${TD}/ns/default/sa/${sa}`;

interface HealthEntry {
  Service: { ID: string; Meta: Record<string, string> };
  Checks: Array<{ CheckID: string; Status: string; Notes: string; Output: string }>;
}

/** The Envoy settings of every host here, over meshHost's. */
const ENVOY = { drainTime: '1s', restartBackoffInitial: '200ms', restartBackoffMax: '1s' };

t.test('a restart while the control plane is stopped: traffic flows again from the stored SVIDs', async (t) => {
  const base = await tempDir(t, 'mesh-ht-');
  const cpDir = path.join(base, 'cp');
  const cp = await spawnControlPlane(cpDir, TD);
  t.teardown(async () => {
    if (processAlive(cp.child.pid)) process.kill(cp.child.pid, 'SIGCONT');
    await cp.child.stop();
  });
  const consul = await startConsulDev();
  t.teardown(() => consul.stop());
  const apps = await startWebApi(t);
  const { apiLocal } = apps.ports;
  const host = await meshHost(t, {
    join: adminJoinSource(cp),
    consulAddr: consul.httpAddr,
    allow: [id('web'), id('api')],
    config: { trustDomain: undefined },
    envoy: ENVOY,
    workloads: apps.files(),
  });
  const { fx } = host;

  const first = runAgent(t, host);
  await meshTraffic(apiLocal);
  await first.stop();
  t.equal(first.process.exitCode, 0, 'the first agent stopped cleanly');

  process.kill(cp.child.pid, 'SIGSTOP');
  const startedAt = performance.now();
  const second = runAgent(t, host);
  const answer = await waitFor(() => getJson<EchoAnswer>(apiLocal).catch(() => undefined), {
    timeoutMs: 30_000,
    intervalMs: 20,
    what: 'traffic with the control plane stopped',
    fatal: () => (second.exited() ? `the agent exited:\n${second.output().slice(-3000)}` : undefined),
  });
  const tookMs = Math.round(performance.now() - startedAt);
  t.equal(answer.app, 'api', 'web -> api flows with the control plane stopped');
  // The time is information (the 5 s target is checked by `npm run bench -- agent-restart`).
  t.comment(`traffic flowed ${tookMs} ms after the agent's start`);
  const status = await agentStatus<{ workloads: Array<{ name: string; svid: { source?: string }; dataPlane: string }> }>(fx.statusAddr);
  t.same(
    status.workloads.map((w) => [w.name, w.svid.source, w.dataPlane]),
    [
      ['api', 'disk', 'serving'],
      ['web', 'disk', 'serving'],
    ],
    'status: both SVIDs come from disk, both workloads serve',
  );
  const checks = await consul.api<Array<{ ServiceID: string; CheckID: string; Status: string }>>(`/v1/health/node/${consul.nodeName}`);
  t.same(
    checks
      .filter((c) => c.CheckID.startsWith('mesh:'))
      .map((c) => c.Status)
      .sort(),
    ['passing', 'passing'],
    'the mesh listener checks pass',
  );
  process.kill(cp.child.pid, 'SIGCONT');
});

t.test('a workload without an SVID is critical in Consul, and callers on other hosts are never sent to it', async (t) => {
  const { consul, join } = await startMeshPeers(t, { trustDomain: TD });
  const web = await startEchoApp('web');
  const apiB = await startEchoApp('api-on-b');
  const apiC = await startEchoApp('api-on-c');
  t.teardown(() => Promise.all([web.close(), apiB.close(), apiC.close()]));
  const [webMesh, bMesh, cMesh, apiLocal] = (await freePorts(4)) as [number, number, number, number];

  /** One host: its own agent, data folder and Envoy; its token allows only `allow`. */
  const host = async (nodeName: string, allow: string[], workload: WorkloadFile) => {
    const h = await meshHost(t, {
      join,
      consulAddr: consul.httpAddr,
      nodeName,
      allow,
      config: { trustDomain: undefined },
      envoy: ENVOY,
      workloads: { [`${workload.name}.yaml`]: workloadYaml(workload) },
    });
    return { ...h, agent: runAgent(t, h) };
  };
  // vm-b runs api, but its token does not allow api's identity: it never gets the SVID.
  const b = await host('vm-b', [id('web')], { name: 'api', port: apiB.port, meshPort: bMesh });
  const c = await host('vm-c', [id('api')], { name: 'api', port: apiC.port, meshPort: cMesh });
  const a = await host('vm-a', [id('web')], {
    name: 'web',
    port: web.port,
    meshPort: webMesh,
    upstreams: [{ service: 'api', localPort: apiLocal }],
  });

  let last: HealthEntry[] = [];
  const entries = await waitFor(
    async () => {
      const list = await consul.api<HealthEntry[]>('/v1/health/service/api');
      last = list;
      const meshOf = (node: string) =>
        list.find((e) => e.Service.Meta.mesh_node === node)?.Checks.find((k) => k.CheckID.startsWith('mesh:'));
      const onB = meshOf('vm-b');
      const onC = meshOf('vm-c');
      return onB?.Status === 'critical' && /MESH_E_NOT_AUTHORIZED/.test(onB.Notes) && onC?.Status === 'passing' ? { onB, onC } : undefined;
    },
    { timeoutMs: 60_000, what: "api on vm-b critical (no SVID) and api on vm-c passing, in Consul's checks" },
  ).catch((err: unknown) => {
    throw new Error(
      `${(err as Error).message}\nConsul has: ${JSON.stringify(last.map((e) => [e.Service.ID, e.Checks]))}\nvm-b: ${b.agent.output().slice(-2000)}`,
    );
  });
  t.match(
    entries.onB.Notes,
    /not serving: waiting for its SVID \(spiffe:\/\/example\.org\/ns\/default\/sa\/api\): MESH_E_NOT_AUTHORIZED/,
    "the catalog has the reason, naming the cause (the check's Notes)",
  );
  const local = await consul.api<Record<string, { Output: string }>>('/v1/agent/checks');
  t.match(
    local['mesh:api-vm-b']?.Output,
    /waiting for its SVID.*MESH_E_NOT_AUTHORIZED/,
    "and the host's Consul agent has it as the check's Output",
  );
  const passing = await consul.api<HealthEntry[]>('/v1/health/service/api?passing=true');
  t.same(
    passing.map((e) => e.Service.Meta.mesh_node),
    ['vm-c'],
    'only the instance that serves is passing',
  );
  const bStatus = await agentStatus<{ healthy: boolean; workloads: Array<{ name: string; dataPlane: string }> }>(b.fx.statusAddr);
  t.match(bStatus.workloads[0]?.dataPlane, /waiting for its SVID/, "vm-b's status says the same");
  t.notOk(bStatus.healthy);

  // vm-a's web calls api many times: every answer comes from vm-c, none is sent to vm-b.
  await meshTraffic(apiLocal, { what: 'web -> api through vm-a' });
  const answers: string[] = [];
  for (let i = 0; i < 50; i++) answers.push((await getJson<EchoAnswer>(apiLocal)).app);
  t.same([...new Set(answers)], ['api-on-c'], '50 of 50 requests were answered by the instance on vm-c');
  const clusters = await httpGet(`http://127.0.0.1:${a.adminPort}/clusters`);
  t.match(clusters.body, new RegExp(`outbound:api@web::127\\.0\\.0\\.1:${cMesh}::`), "vm-a's Envoy has vm-c's mesh port");
  t.notMatch(clusters.body, new RegExp(`:${bMesh}::`), "and not vm-b's");
  t.ok(processAlive(c.agent.pid) && processAlive(b.agent.pid), 'both agents still run');
});
