/**
 * `mesh-agent doctor` against real components: a real control plane, a real
 * Consul dev agent (one with ACLs on, default deny), the provisioned Envoy,
 * and the agent as `mesh-agent run`. Each deliberately broken set-up must be
 * named by its check, with its fix, and exit 1:
 * - the control plane down;
 * - a Consul token without service:write (checked read-only, through Consul's
 *   authorize API: nothing is registered);
 * - the identity folder with mode 0755;
 * - envoy.binary pointing at nothing;
 * - an expired node SVID: a real control plane whose injected clock was 3 h
 *   behind at the join issued a 1 h node SVID (the clock is then set to now,
 *   so the control plane's time and ours agree again).
 * A healthy host with the agent and Envoy running passes every check (exit 0).
 */
import { chmod } from 'node:fs/promises';
import path from 'node:path';
import t, { type Test } from 'tap';
import type { CheckResult } from '../../agent/doctor/doctor-types.js';
import type { DoctorReport } from '../../agent/doctor/runner.js';
import { agentProgram } from '../../agent/program.js';
import type { StatusDocument } from '../../agent/status/status.js';
import { freePorts } from '../../lib/ports.js';
import { FakeClock } from '../fakes/clock.js';
import { type AgentFixture, agentFixture, agentStatus, startAgentProcess } from '../support/agent-process.js';
import { runProgram } from '../support/cli.js';
import { type ConsulDev, startConsulDev } from '../support/consul.js';
import { joinNode, joinSource, startTestControlPlane, type TestControlPlane } from '../support/controlplane.js';
import { tools } from '../support/tools.js';
import { waitFor } from '../support/wait.js';
import { workloadYaml } from '../support/workload-files.js';

t.setTimeout(300_000);

const MANAGEMENT_TOKEN = '0d0c7e1a-5e1f-4c6b-9d1e-6f0a4b2c3d01';

const consul = await startConsulDev();
t.teardown(() => consul.stop());
const { envoy } = await tools();

interface Host {
  fx: AgentFixture;
  adminPort: number;
}

/** An agent configuration (data plane on, the provisioned Envoy), joined to `cp`, with one workload `api`. */
async function host(
  t: Test,
  cp: TestControlPlane,
  options: { consul?: ConsulDev; token?: string; envoy?: Record<string, unknown> } = {},
): Promise<Host> {
  const [adminPort, appPort, meshPort] = (await freePorts(3)) as [number, number, number];
  const fx = await agentFixture((options.consul ?? consul).httpAddr, {
    dataPlane: { enabled: true },
    envoy: { binary: envoy.path, adminPort, concurrency: 1, ...options.envoy },
    ...(options.token === undefined ? {} : { consul: { token: options.token } }),
  });
  t.teardown(() => fx.remove());
  await joinNode(joinSource(cp), fx.nodeName, [`spiffe://${cp.trustDomain}/ns/*/sa/*`], fx.dataDir);
  await fx.writeWorkload('api.yaml', workloadYaml({ name: 'api', port: appPort, meshPort }));
  return { fx, adminPort };
}

async function doctor(fx: AgentFixture): Promise<{ code: number; report: DoctorReport; text: string }> {
  const json = await runProgram(agentProgram(), ['doctor', '--config', fx.configFile, '--json']);
  const text = await runProgram(agentProgram(), ['doctor', '--config', fx.configFile]);
  return { code: json.code, report: JSON.parse(json.out) as DoctorReport, text: text.out };
}

function check(report: DoctorReport, id: string): CheckResult {
  const found = report.checks.find((c) => c.id === id);
  if (found === undefined) throw new Error(`no check ${id} in ${JSON.stringify(report)}`);
  return found;
}

/** The check failed with this detail and fix, and the text output shows both under FAIL. */
function assertFails(t: Test, r: Awaited<ReturnType<typeof doctor>>, id: string, detail: RegExp, fix: RegExp): void {
  t.equal(r.code, 1, 'exit 1');
  t.equal(r.report.ok, false);
  const c = check(r.report, id);
  t.equal(c.level, 'fail', `${id}: ${c.detail}`);
  t.match(c.detail, detail);
  t.match(c.fix, fix);
  t.match(r.text, new RegExp(`FAIL  ${id} +.*\\n +fix: `));
}

t.test('healthy: the agent and Envoy running, every check passes, exit 0', async (t) => {
  const cp = await startTestControlPlane();
  t.teardown(() => cp.stop());
  const h = await host(t, cp);
  const agent = startAgentProcess(h.fx.configFile);
  t.teardown(() => agent.stop());
  let last: StatusDocument | undefined;
  await waitFor(
    async () => {
      if (agent.exited()) throw new Error(`the agent exited:\n${agent.output().slice(-3000)}`);
      const s = await agentStatus<StatusDocument>(h.fx.statusAddr).catch(() => undefined);
      last = s ?? last;
      const acked = (s?.xds?.types ?? []).filter((x) => x.ackedVersion !== undefined).length;
      return s?.healthy === true && s.envoy?.state === 'running' && s.workloads[0]?.dataPlane === 'serving' && acked >= 3 ? s : undefined;
    },
    { timeoutMs: 60_000, what: 'the agent healthy with Envoy serving' },
  ).catch((err: Error) => {
    throw new Error(`${err.message}\nlast status: ${JSON.stringify(last)}\n${agent.output().slice(-2000)}`);
  });
  const r = await doctor(h.fx);
  t.same(
    r.report.checks.filter((c) => c.level !== 'pass').map((c) => `${c.id}: ${c.detail}`),
    [],
    'no warn, no fail',
  );
  t.equal(r.code, 0);
  t.equal(r.report.checks.length, 10);
  t.equal(r.report.agent.running, true);
  t.match(check(r.report, 'ports').detail, /^3 held by the agent or its Envoy, 0 free/);
  t.match(check(r.report, 'node-svid').data, { secondsLeft: Number });
  t.match(check(r.report, 'clock-skew').data, { skewMs: Number, uncertaintyMs: Number });
  t.match(check(r.report, 'consul').detail, /its ACLs are off, so any registration is allowed/);
  t.match(check(r.report, 'envoy-admin').detail, /Envoy LIVE .* no NACK pending/);
  t.match(r.text, /10 checks: 10 pass, 0 warn, 0 fail\n$/);
});

t.test('control plane down: named, with how to bring it back', async (t) => {
  const cp = await startTestControlPlane();
  const h = await host(t, cp);
  const address = cp.cp.address;
  await cp.stop();
  const r = await doctor(h.fx);
  assertFails(
    t,
    r,
    'controlplane',
    new RegExp(`the control plane at ${address} is unreachable \\(ECONNREFUSED`),
    /systemctl start mesh-controlplane/,
  );
  t.equal(check(r.report, 'clock-skew').level, 'warn', 'skew cannot be measured');
});

t.test("a Consul ACL that denies the agent's registration (default deny, a read-only token)", async (t) => {
  const cp = await startTestControlPlane();
  t.teardown(() => cp.stop());
  const acl = await startConsulDev({
    extraConfig: { acl: { enabled: true, default_policy: 'deny', tokens: { initial_management: MANAGEMENT_TOKEN } } },
  });
  t.teardown(() => acl.stop());
  const put = async (apiPath: string, body: unknown) => {
    const res = await fetch(`http://${acl.httpAddr}${apiPath}`, {
      method: 'PUT',
      headers: { 'X-Consul-Token': MANAGEMENT_TOKEN },
      body: JSON.stringify(body),
    });
    if (res.status !== 200) throw new Error(`${apiPath}: HTTP ${res.status}: ${await res.text()}`);
    return (await res.json()) as Record<string, unknown>;
  };
  // The ACL system bootstraps itself shortly after the dev agent elects itself.
  await waitFor(
    () =>
      put('/v1/acl/policy', {
        Name: 'read-only',
        Rules: 'service_prefix "" { policy = "read" }\nnode_prefix "" { policy = "read" }',
      }).catch(() => undefined),
    {
      timeoutMs: 30_000,
      what: 'the Consul ACL system to accept a policy',
    },
  );
  const token = String((await put('/v1/acl/token', { Policies: [{ Name: 'read-only' }] })).SecretID);
  const h = await host(t, cp, { consul: acl, token });
  const r = await doctor(h.fx);
  assertFails(t, r, 'consul', /the agent's Consul token may not register: service:write on api/, /service "api" \{ policy = "write" \}/);
  t.same(check(r.report, 'consul').data, { denied: [{ resource: 'service', segment: 'api', access: 'write' }] });
  const services = await (
    await fetch(`http://${acl.httpAddr}/v1/catalog/services`, { headers: { 'X-Consul-Token': MANAGEMENT_TOKEN } })
  ).json();
  t.same(Object.keys(services as object), ['consul'], 'the check registered nothing');

  await put('/v1/acl/policy', { Name: 'api-writer', Rules: 'service "api" { policy = "write" }' });
  const writer = String((await put('/v1/acl/token', { Policies: [{ Name: 'api-writer' }] })).SecretID);
  const allowed = await doctor((await host(t, cp, { consul: acl, token: writer })).fx);
  t.equal(check(allowed.report, 'consul').level, 'pass', 'the token with service:write on api passes');
  t.match(check(allowed.report, 'consul').detail, /the token may write service api/);

  const unknown = await host(t, cp, { consul: acl, token: '5b0f2c1e-0000-4000-8000-000000000000' });
  assertFails(t, await doctor(unknown.fx), 'consul', /does not know the agent's token/, /consul\.token/);
});

t.test('the identity folder with mode 0755', async (t) => {
  const cp = await startTestControlPlane();
  t.teardown(() => cp.stop());
  const h = await host(t, cp);
  const dir = path.join(h.fx.dataDir, 'identity');
  await chmod(dir, 0o755);
  await chmod(path.join(dir, 'node.key'), 0o644);
  const r = await doctor(h.fx);
  assertFails(
    t,
    r,
    'data-dir',
    new RegExp(`${dir} has mode 0755, not 0700; ${dir}/node.key has mode 0644, not 0600`),
    new RegExp(`chmod 0700 ${dir} && chmod 0600 ${dir}/node.key`),
  );
});

t.test('a missing Envoy binary', async (t) => {
  const cp = await startTestControlPlane();
  t.teardown(() => cp.stop());
  const missing = '/nonexistent/mesh-test/envoy';
  const h = await host(t, cp, { envoy: { binary: missing } });
  const r = await doctor(h.fx);
  assertFails(
    t,
    r,
    'envoy-binary',
    new RegExp(`envoy.binary ${missing} does not exist`),
    /install Envoy 1\.40 at .* or set envoy\.binary in /,
  );
});

t.test('an expired node SVID: issued by a real control plane whose clock was 3 h behind', async (t) => {
  const hour = 3600_000;
  const clock = new FakeClock(Date.now() - 3 * hour);
  const cp = await startTestControlPlane({ clock, nodeSvidTtl: '1h' });
  t.teardown(() => cp.stop());
  const h = await host(t, cp);
  clock.advance(3 * hour);
  const r = await doctor(h.fx);
  assertFails(t, r, 'node-svid', /is not valid: it expired at \d{4}-/, /meshctl token create NODE.*mesh-agent join --force/);
  t.ok((check(r.report, 'node-svid').data?.secondsLeft as number) < -3000, 'about 2 h ago');
  t.equal(check(r.report, 'controlplane').level, 'pass', 'the control plane itself is fine');
});
