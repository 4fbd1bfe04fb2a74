/**
 * The capture lifecycle in the real `mesh-agent run` (as root, Envoy as uid
 * 15337), inside network namespaces (the host's own tables are never
 * touched): h0 runs Consul and the control plane, h1 the agent with capture
 * on (nft backend, IPv6 on) and its workload api. In h1 a foreign user chain
 * with rules in filter and nat, IPv4 and IPv6, is there before the agent.
 * - the rules are installed once Envoy is ready; status says `installed`;
 * - a rule of ours deleted by hand is repaired at the next check;
 * - kill -9 of the agent leaves the rules; a restart finds them, replaces
 *   them, and says so;
 * - SIGTERM removes ours: the foreign tables are byte-for-byte what they
 *   were (counters normalized), in both families;
 * - with failurePolicy open, killing Envoy lifts capture (status `lifted`,
 *   CAPTURE LIFTED in the log; the delay is printed, not asserted) and it
 *   comes back once the restarted Envoy is ready.
 */
import { chmod, copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { startAgentProcess } from '../support/agent-process.js';
import { childKeeper, killIfSame, type ManagedChild, processRef } from '../support/child.js';
import { createNetwork, privilegedSkipReason, type TestHost } from '../support/netns.js';
import { dist, httpIn, meshctl, startNetnsPeers } from '../support/netns-peers.js';
import { tools } from '../support/tools.js';
import { waitFor } from '../support/wait.js';
import { workloadYaml } from '../support/workload-files.js';

/** The child's output once it holds pattern: a log line can arrive a moment after the status that follows it. */
const logged = (child: ManagedChild, pattern: RegExp): Promise<string> =>
  waitFor(async () => (pattern.test(child.output()) ? child.output() : undefined), { what: `the log line ${pattern}` });

const skip = await privilegedSkipReason();
if (skip !== undefined) process.stderr.write(`# skipping privileged tests: ${skip}\n`);

const TD = 'example.org';
const APP_PORT = 8080;
const MESH_PORT = 21002;
const STATUS = 15100;
const ENVOY_UID = 15337;

const FOREIGN: Record<'ipv4' | 'ipv6', string> = {
  ipv4: [
    '*filter',
    ':FOREIGN_FW - [0:0]',
    '-A FOREIGN_FW -p tcp --dport 3306 -j DROP',
    '-A INPUT -j FOREIGN_FW',
    'COMMIT',
    '*nat',
    ':FOREIGN_NAT - [0:0]',
    '-A FOREIGN_NAT -p tcp --dport 2525 -j REDIRECT --to-ports 25',
    '-A OUTPUT -p tcp -j FOREIGN_NAT',
    'COMMIT',
    '',
  ].join('\n'),
  ipv6: [
    '*filter',
    ':FOREIGN_FW6 - [0:0]',
    '-A FOREIGN_FW6 -p tcp --dport 3306 -j DROP',
    '-A INPUT -j FOREIGN_FW6',
    'COMMIT',
    '*nat',
    ':FOREIGN_NAT6 - [0:0]',
    '-A FOREIGN_NAT6 -p tcp --dport 2525 -j REDIRECT --to-ports 25',
    '-A OUTPUT -p tcp -j FOREIGN_NAT6',
    'COMMIT',
    '',
  ].join('\n'),
};

const program = (family: 'ipv4' | 'ipv6', tool: 'save' | 'restore') => `${family === 'ipv4' ? 'iptables' : 'ip6tables'}-nft-${tool}`;

/** Both families' filter and nat tables, comments and counters normalized. */
async function tables(host: TestHost): Promise<string> {
  let out = '';
  for (const family of ['ipv4', 'ipv6'] as const)
    for (const table of ['filter', 'nat']) {
      const r = await host.exec(program(family, 'save'), ['-t', table], { timeoutMs: 10_000 });
      if (r.code !== 0) throw new Error(`${program(family, 'save')} in ${host.name}: ${r.stderr}`);
      out += `# ${family}\n${r.stdout
        .split('\n')
        .filter((l) => !l.startsWith('#'))
        .map((l) => l.replace(/\[\d+:\d+\]/, '[0:0]'))
        .join('\n')}`;
    }
  return out;
}

interface Capture {
  state: string;
  repairs: number;
  rules: { expected: number; installed: number };
  drift: { missing: string[]; unexpected: string[] };
}

t.test('capture lifecycle in the real agent, in a network namespace', { skip: skip ?? false, timeout: 300_000 }, async (t) => {
  const { envoy } = await tools();
  const base = await mkdtemp(path.join(os.tmpdir(), 'mesh-netns-capture-'));
  await chmod(base, 0o711);
  const net = await createNetwork(2);
  const { keep, stopAll } = childKeeper();
  t.teardown(async () => {
    await stopAll();
    await net.remove().catch(() => undefined);
    await rm(base, { recursive: true, force: true });
  });
  const [h0, h1] = net.hosts as [TestHost, TestHost];

  const { consulAddr, cp, cpDir, bundleFile } = await startNetnsPeers(h0, base, TD, keep);

  // h1: the foreign rules first, then the joined agent with capture on.
  for (const family of ['ipv4', 'ipv6'] as const) {
    const r = await h1.exec(program(family, 'restore'), ['--noflush'], { input: FOREIGN[family], timeoutMs: 10_000 });
    if (r.code !== 0) throw new Error(`${program(family, 'restore')}: ${r.stderr}`);
  }
  const foreign = await tables(h1);
  const dir = path.join(base, 'api');
  const dataDir = path.join(dir, 'data');
  const workloadsDir = path.join(dir, 'workloads.d');
  await mkdir(workloadsDir, { recursive: true });
  await chmod(dir, 0o711);
  const binary = path.join(base, 'envoy');
  await copyFile(envoy.path, binary);
  await chmod(binary, 0o755);
  const token = (
    await meshctl(['token', 'create', '--data-dir', cpDir, '--node', 'vm-api', '--allow', `spiffe://${TD}/ns/default/sa/api`])
  ).trim();
  const joined = await h1.exec(
    process.execPath,
    [dist('agent', 'main.js'), 'join', '--controlplane', cp.address, '--token', token, '--ca-bundle', bundleFile, '--data-dir', dataDir],
    { timeoutMs: 30_000 },
  );
  if (joined.code !== 0) throw new Error(`join: ${joined.stderr}`);
  keep(h1.spawn(process.execPath, [dist('test', 'support', 'echo-app-main.js'), 'api', String(APP_PORT)]));
  await writeFile(path.join(workloadsDir, 'api.yaml'), workloadYaml({ name: 'api', port: APP_PORT, meshPort: MESH_PORT }));
  const configFile = path.join(dir, 'agent.json');
  await writeFile(
    configFile,
    JSON.stringify({
      nodeName: 'vm-api',
      trustDomain: TD,
      dataDir,
      workloadsDir,
      advertiseAddress: h1.address,
      controlPlane: { address: cp.address, caBundle: bundleFile },
      consul: { address: consulAddr, retryInitial: '100ms', retryMax: '1s', syncInterval: '1s', watchWait: '10s' },
      envoy: { binary, adminPort: 15000, concurrency: 1, drainTime: '1s', user: String(ENVOY_UID) },
      status: { listen: `127.0.0.1:${STATUS}` },
      transparentProxy: { enabled: true, backend: 'nft', ipv6: 'on', checkInterval: '1s' },
    }),
  );
  const capture = async () => {
    const r = await httpIn(h1, `http://127.0.0.1:${STATUS}/status`);
    return r.status === 0 ? undefined : (JSON.parse(r.body) as { transparentProxy?: Capture; envoy?: { pid?: number } });
  };
  const installed = (agent: ManagedChild, what: string) =>
    waitFor(
      async () => {
        if (agent.exited()) throw new Error(`the agent exited:\n${agent.output().slice(-3000)}`);
        const s = await capture().catch(() => undefined);
        return s?.transparentProxy?.state === 'installed' ? s : undefined;
      },
      { timeoutMs: 90_000, what },
    );

  // 1. Installed once Envoy is ready; the foreign rules stay.
  let agent = keep(startAgentProcess(configFile, h1.spawn));
  const first = await installed(agent, 'capture installed');
  // Its Envoy as it runs now (step 3 ends it; a pid alone may name another process by then).
  const firstEnvoy = processRef(first.envoy?.pid);
  t.ok((first.transparentProxy?.rules.expected ?? 0) > 0);
  t.equal(first.transparentProxy?.rules.installed, first.transparentProxy?.rules.expected, 'installed = expected');
  const withOurs = await tables(h1);
  t.match(withOurs, /-A PREROUTING .*mesh-agent:/, 'our jump in PREROUTING');
  t.match(withOurs, /# ipv6[\s\S]*:MESH_OUTPUT/, 'the IPv6 rules too');
  const foreignLines = foreign.split('\n').filter((l) => l.startsWith('-A') && l.includes('FOREIGN'));
  t.equal(foreignLines.length, 8, 'four foreign rules per family');
  t.ok(
    foreignLines.every((l) => withOurs.includes(l)),
    'every foreign rule is still there',
  );

  // 2. A rule deleted by hand is repaired.
  const jump = withOurs.split('\n').find((l) => l.startsWith('-A PREROUTING') && l.includes('mesh-agent:')) as string;
  const del = await h1.exec(program('ipv4', 'restore'), ['--noflush'], { input: `*nat\n-D${jump.slice(2)}\nCOMMIT\n`, timeoutMs: 10_000 });
  t.equal(del.code, 0, `deleted by hand: ${del.stderr}`);
  const repaired = await waitFor(
    async () => {
      const s = await capture();
      return (s?.transparentProxy?.repairs ?? 0) >= 1 && s?.transparentProxy?.state === 'installed' ? s : undefined;
    },
    { timeoutMs: 30_000, what: 'the drift repaired' },
  );
  t.equal(repaired.transparentProxy?.repairs, 1);
  t.ok((await tables(h1)).includes(jump), 'the jump is back');
  t.match(await logged(agent, /drifted from the expected ones; repairing/), /repairing/, 'the repair is logged');

  // 3. kill -9: the rules stay; a restart replaces them and says so.
  agent.process.kill('SIGKILL');
  await waitFor(async () => (agent.exited() ? true : undefined), { what: 'the agent to die' });
  // Its Envoy outlives it (ours to end, by pid): the next agent starts its own.
  killIfSame(firstEnvoy, 'SIGKILL');
  t.match(await tables(h1), /mesh-agent:/, 'the rules outlive a crashed agent (failurePolicy closed)');
  agent = keep(startAgentProcess(configFile, h1.spawn));
  await installed(agent, 'capture installed after the restart');
  t.match(await logged(agent, /found rules of an earlier run/), /earlier run/, 'the earlier rules are noticed');
  t.match(
    await logged(agent, /replacing the rules of an earlier run in one transaction/),
    /one transaction/,
    'and replaced in one transaction',
  );

  // 4. SIGTERM: ours removed, the foreign tables exactly as before.
  await agent.stop();
  t.equal(await tables(h1), foreign, 'byte-for-byte the foreign rules, both families, filter and nat');

  // 5. failurePolicy open: Envoy killed -> capture lifted, loudly; back with Envoy.
  const config = JSON.parse(await readFile(configFile, 'utf8')) as {
    transparentProxy: Record<string, unknown>;
    envoy: Record<string, unknown>;
  };
  config.transparentProxy.failurePolicy = 'open';
  // Envoy restarts 5 s after its crash: long enough to see the lifted state.
  config.envoy.restartBackoffInitial = '5s';
  await writeFile(configFile, JSON.stringify(config));
  agent = keep(startAgentProcess(configFile, h1.spawn));
  const open = await installed(agent, 'capture installed with failurePolicy open');
  const killedAt = Date.now();
  process.kill(open.envoy?.pid as number, 'SIGKILL');
  await waitFor(async () => (!(await tables(h1)).includes('mesh-agent:') ? true : undefined), {
    timeoutMs: 30_000,
    what: 'capture lifted',
  });
  t.comment(`capture lifted ${Date.now() - killedAt} ms after Envoy was killed (promised: within 2 s)`);
  const lifted = await capture();
  t.match(lifted?.transparentProxy, { state: 'lifted', warning: /LIFTED/ });
  t.match(await logged(agent, /CAPTURE LIFTED/), /LIFTED/, 'the lift is logged');
  await installed(agent, 'capture restored once Envoy is ready again');
  t.match(await tables(h1), /mesh-agent:/, 'the rules are back');
  await agent.stop();
  t.equal(await tables(h1), foreign, 'byte-for-byte the foreign rules after the open-policy run too');
});
