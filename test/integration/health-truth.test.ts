/**
 * Health that tells the truth, against the real control plane, Consul and
 * Envoy, with real `mesh-agent run` processes:
 * - an agent restarted while the control plane is frozen (SIGSTOP) serves its
 *   stored SVIDs, and traffic flows again soon after its start;
 * - a workload whose SVID the control plane refuses is registered critical in
 *   Consul with the reason, and a caller on another host is never sent to it:
 *   every request goes to the instance that serves.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import t, { type Test } from 'tap';
import { joinMesh } from '../../agent/identity/enroll.js';
import { connectAdmin } from '../../controlplane/cli/admin-client.js';
import { toPem } from '../../lib/x509/pem.js';
import { agentFixture, agentStatus, startAgentProcess } from '../support/agent-process.js';
import { type ManagedChild, processAlive } from '../support/child.js';
import { startConsulDev } from '../support/consul.js';
import { spawnControlPlane, startTestControlPlane } from '../support/controlplane.js';
import { type EchoAnswer, getJson, startEchoApp } from '../support/mesh-apps.js';
import { freePorts } from '../support/ports.js';
import { tempDir } from '../support/temp-dir.js';
import { tools } from '../support/tools.js';
import { httpGet, waitFor } from '../support/wait.js';

t.setTimeout(300_000);

const TD = 'example.org';
const id = (sa: string) => `spiffe://${TD}/ns/default/sa/${sa}`;

interface HealthEntry {
  Service: { ID: string; Meta: Record<string, string> };
  Checks: Array<{ CheckID: string; Status: string; Notes: string; Output: string }>;
}

async function envoyConfig(adminPort: number) {
  const { envoy } = await tools();
  return { binary: envoy.path, adminPort, concurrency: 1, drainTime: '1s', restartBackoffInitial: '200ms', restartBackoffMax: '1s' };
}

function stopOnTeardown(t: Test, agent: ManagedChild) {
  t.teardown(() => agent.stop());
}

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
  const web = await startEchoApp('web');
  const api = await startEchoApp('api');
  t.teardown(() => Promise.all([web.close(), api.close()]));
  const [webMesh, apiMesh, apiLocal, adminPort] = (await freePorts(4)) as [number, number, number, number];
  const fx = await agentFixture(consul.httpAddr, {
    trustDomain: undefined,
    dataPlane: { enabled: true },
    envoy: await envoyConfig(adminPort),
  });
  t.teardown(() => fx.remove());
  const { nodeName } = JSON.parse(await readFile(fx.configFile, 'utf8')) as { nodeName: string };
  const admin = connectAdmin(cpDir);
  const { token } = await admin.call<{ token: string }>('CreateToken', {
    node_name: nodeName,
    allow: [id('web'), id('api')],
    ttl_ms: 600_000,
  });
  const bundle = await admin.call<{ roots: Buffer[] }>('GetBundle');
  admin.close();
  await joinMesh({ address: cp.address, token, bundlePem: bundle.roots.map((der) => toPem(der)).join(''), dataDir: fx.dataDir });
  await fx.writeWorkload(
    'web.yaml',
    `name: web\nport: ${web.port}\nmeshPort: ${webMesh}\nprotocol: http\nupstreams: [{ service: api, localPort: ${apiLocal} }]\n`,
  );
  await fx.writeWorkload('api.yaml', `name: api\nport: ${api.port}\nmeshPort: ${apiMesh}\nprotocol: http\n`);

  const first = startAgentProcess(fx.configFile);
  stopOnTeardown(t, first);
  await waitFor(() => getJson(apiLocal).catch(() => undefined), { timeoutMs: 40_000, what: 'traffic through the mesh' });
  await first.stop();
  t.equal(first.process.exitCode, 0, 'the first agent stopped cleanly');

  process.kill(cp.child.pid, 'SIGSTOP');
  const startedAt = performance.now();
  const second = startAgentProcess(fx.configFile);
  stopOnTeardown(t, second);
  const answer = await waitFor(() => getJson<EchoAnswer>(apiLocal).catch(() => undefined), {
    timeoutMs: 30_000,
    intervalMs: 20,
    what: 'traffic with the control plane stopped',
    fatal: () => (second.exited() ? `the agent exited:\n${second.output().slice(-3000)}` : undefined),
  });
  const tookMs = Math.round(performance.now() - startedAt);
  t.equal(answer.app, 'api', 'web -> api flows with the control plane stopped');
  t.comment(`traffic flowed ${tookMs} ms after the agent's start`);
  t.ok(tookMs <= 5_000, `within 5 s of the agent's start (${tookMs} ms)`);
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
  const cp = await startTestControlPlane({ trustDomain: TD });
  t.teardown(() => cp.stop());
  const consul = await startConsulDev();
  t.teardown(() => consul.stop());
  const web = await startEchoApp('web');
  const apiB = await startEchoApp('api-on-b');
  const apiC = await startEchoApp('api-on-c');
  t.teardown(() => Promise.all([web.close(), apiB.close(), apiC.close()]));
  const [webMesh, bMesh, cMesh, apiLocal, adminA, adminB, adminC] = (await freePorts(7)) as number[] as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];

  /** One host: its own agent, data folder and Envoy; its token allows only `allow`. */
  const host = async (name: string, allow: string[], adminPort: number, workloads: Record<string, string>) => {
    const fx = await agentFixture(consul.httpAddr, {
      nodeName: name,
      trustDomain: undefined,
      dataPlane: { enabled: true },
      envoy: await envoyConfig(adminPort),
    });
    t.teardown(() => fx.remove());
    await joinMesh({ address: cp.cp.address, token: cp.token(name, allow), bundlePem: cp.bundlePem(), dataDir: fx.dataDir });
    for (const [file, text] of Object.entries(workloads)) await fx.writeWorkload(file, text);
    const agent = startAgentProcess(fx.configFile);
    stopOnTeardown(t, agent);
    return { fx, agent };
  };
  // vm-b runs api, but its token does not allow api's identity: it never gets the SVID.
  const b = await host('vm-b', [id('web')], adminB, { 'api.yaml': `name: api\nport: ${apiB.port}\nmeshPort: ${bMesh}\nprotocol: http\n` });
  const c = await host('vm-c', [id('api')], adminC, { 'api.yaml': `name: api\nport: ${apiC.port}\nmeshPort: ${cMesh}\nprotocol: http\n` });
  await host('vm-a', [id('web')], adminA, {
    'web.yaml': `name: web\nport: ${web.port}\nmeshPort: ${webMesh}\nprotocol: http\nupstreams: [{ service: api, localPort: ${apiLocal} }]\n`,
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
  await waitFor(() => getJson(apiLocal).catch(() => undefined), { timeoutMs: 40_000, what: 'web -> api through vm-a' });
  const answers: string[] = [];
  for (let i = 0; i < 50; i++) answers.push((await getJson<EchoAnswer>(apiLocal)).app);
  t.same([...new Set(answers)], ['api-on-c'], '50 of 50 requests were answered by the instance on vm-c');
  const clusters = await httpGet(`http://127.0.0.1:${adminA}/clusters`);
  t.match(clusters.body, new RegExp(`outbound:api::127\\.0\\.0\\.1:${cMesh}::`), "vm-a's Envoy has vm-c's mesh port");
  t.notMatch(clusters.body, new RegExp(`:${bMesh}::`), "and not vm-b's");
  t.ok(processAlive(c.agent.pid) && processAlive(b.agent.pid), 'both agents still run');
});
