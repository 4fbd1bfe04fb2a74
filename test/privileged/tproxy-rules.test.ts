/**
 * The capture rules against the real iptables, for both backends (nft and
 * legacy), each in a fresh network namespace made here (never the host's
 * own tables): foreign user chains with rules in filter and nat, IPv4 and
 * IPv6, exist before. Then: detection finds the backend in use; install;
 * inspectRules agrees with what iptables-save prints; a second install
 * changes nothing; a rule deleted by hand shows in inspectRules and in
 * `mesh-agent tproxy status` and is restored by installRules; the rules of a
 * previous config ("crashed" run) are replaced by one restore per table and
 * family; `mesh-agent tproxy remove` leaves the foreign chains byte-for-byte
 * as before (counters normalized) and nothing of ours.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { loadAgentConfig } from '../../agent/config/load.js';
import { inspectRules, installRules, removeRules } from '../../agent/tproxy/apply.js';
import { buildRuleSet } from '../../agent/tproxy/build.js';
import { resolveCaptureFacts } from '../../agent/tproxy/facts.js';
import type { IpFamily, IptablesRunner } from '../../agent/tproxy/iptables-runner.js';
import { ALL_TABLES, normalizeSave } from '../../agent/tproxy/render.js';
import { createIptablesRunner, detectBackend } from '../../agent/tproxy/runner-exec.js';
import { loadWorkloads } from '../../agent/workloads/load.js';
import type { MeshError } from '../../lib/errors.js';
import { runChecked } from '../../lib/exec.js';
import { repoRoot } from '../../scripts/repo-root.js';
import { createNetwork, privilegedSkipReason, type TestHost } from '../support/netns.js';
import { agentConfigFile } from '../support/tproxy-config.js';

const skip = await privilegedSkipReason();
if (skip !== undefined) process.stderr.write(`# skipping privileged tests: ${skip}\n`);

const mainJs = path.join(repoRoot(), 'dist', 'agent', 'main.js');

const foreign = (family: IpFamily) => {
  const net = family === 'ipv4' ? '10.9.0.0/16' : 'fd09::/16';
  return [
    `*filter\n:FOREIGN_F - [0:0]\n-A FOREIGN_F -s ${net} -m comment --comment "someone else's" -j ACCEPT\n-A INPUT -j FOREIGN_F\nCOMMIT\n`,
    `*nat\n:FOREIGN_N - [0:0]\n-A FOREIGN_N -p tcp -m tcp --dport 9999 -j RETURN\n-A OUTPUT -p tcp -j FOREIGN_N\n-A PREROUTING -d ${net} -p tcp -j RETURN\nCOMMIT\n`,
  ];
};

/** Every table of both families, counters zeroed, comment lines dropped. */
async function snapshot(runner: IptablesRunner): Promise<string> {
  const parts: string[] = [];
  for (const family of ['ipv4', 'ipv6'] as const)
    for (const table of ALL_TABLES) parts.push(`## ${family}\n${normalizeSave(await runner.save(family, table))}`);
  return parts.join('');
}

/** A runner that counts its restores (one per table and family is the atomicity claim). */
function counting(runner: IptablesRunner): IptablesRunner & { restores: number } {
  const counted = {
    backend: runner.backend,
    restores: 0,
    save: (family: IpFamily, table: string) => runner.save(family, table),
    restore: (family: IpFamily, input: string) => {
      counted.restores++;
      return runner.restore(family, input);
    },
  };
  return counted;
}

async function expectedSet(file: string) {
  const config = await loadAgentConfig(file, { hostname: async () => 'tproxy-test' });
  const { workloads } = await loadWorkloads(config.workloadsDir, { trustDomain: 'example.org', inboundPortOffset: 10000 });
  return buildRuleSet(config.transparentProxy, await resolveCaptureFacts({ config, workloads }));
}

async function cli(host: TestHost, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return host.exec(process.execPath, [mainJs, 'tproxy', ...args], { timeoutMs: 60_000 });
}

for (const backend of ['nft', 'legacy'] as const) {
  t.test(`capture rules with iptables-${backend}`, { skip: skip ?? false, timeout: 180_000 }, async (t) => {
    const dir = await mkdtemp(path.join(os.tmpdir(), `mesh-tproxy-${backend}-`));
    const net = await createNetwork(1);
    t.teardown(async () => {
      await net.remove();
      await rm(dir, { recursive: true, force: true });
    });
    const host = net.hosts[0] as TestHost;
    const options = { commandPrefix: ['ip', 'netns', 'exec', host.netns] };
    const runner = counting(createIptablesRunner(backend, options));

    for (const family of ['ipv4', 'ipv6'] as const) for (const input of foreign(family)) await runner.restore(family, input);
    t.equal(await detectBackend('auto', options), backend, 'auto picks the backend holding the rules');
    const before = await snapshot(runner);
    t.match(before, /FOREIGN_F/);

    const file = await agentConfigFile(dir, backend, 'dns: { capture: true }, outbound: { excludeCIDRs: ["192.168.0.0/16", "fd12::/16"] }');
    const set = await expectedSet(file);

    await installRules(runner, set);
    const clean = await inspectRules(runner, set);
    t.same(clean.missing, [], 'every expected rule is installed as iptables-save prints it');
    t.same(clean.unexpected, []);
    t.equal(clean.installed, clean.expected);
    const installed = await snapshot(runner);

    runner.restores = 0;
    await installRules(runner, set);
    t.equal(await snapshot(runner), installed, 'a second install changes nothing (counters normalized)');
    t.equal(runner.restores, 2, 'one restore per family for the nat table');

    // A rule deleted by hand (the SSH exemption, IPv4).
    const ssh =
      (await runner.save('ipv4', 'nat')).split('\n').find((l) => l.startsWith('-A MESH_OUTPUT') && l.includes('--dport 22')) ?? '';
    t.ok(ssh !== '', 'the SSH exemption is installed');
    await runChecked(
      'ip',
      [
        'netns',
        'exec',
        host.netns,
        `iptables-${backend}`,
        '-t',
        'nat',
        '-D',
        'MESH_OUTPUT',
        '-p',
        'tcp',
        '--dport',
        '22',
        '-m',
        'comment',
        '--comment',
        'mesh-agent: port 22: SSH is never captured (no lock-out)',
        '-j',
        'RETURN',
      ],
      'MESH_E_TPROXY_IPTABLES',
    );
    const drift = await inspectRules(runner, set);
    t.equal(drift.missing.length, 1, 'inspectRules reports the missing rule');
    t.match(drift.missing[0], /^ipv4 nat -A MESH_OUTPUT -p tcp --dport 22 /);
    const status = await cli(host, ['status', '--config', file, '--json']);
    t.equal(status.code, 1, `tproxy status exits 1 on drift: ${status.stderr}`);
    const doc = JSON.parse(status.stdout) as { backend: string; missing: string[]; inSync: boolean };
    t.equal(doc.backend, backend);
    t.same(doc.missing, drift.missing, 'tproxy status shows the same drift');
    await installRules(runner, set);
    t.equal(await snapshot(runner), installed, 'installRules restores it');
    const human = await cli(host, ['status', '--config', file]);
    t.equal(human.code, 0, human.stderr);
    t.match(human.stdout, new RegExp(`backend   ${backend}[\\s\\S]*drift     none`));

    // A "crashed" run left the rules of another config: a new install replaces them atomically.
    const otherFile = await agentConfigFile(dir, backend, 'inbound: { enabled: false }, outbound: { excludePorts: [5432] }');
    const other = await expectedSet(otherFile);
    runner.restores = 0;
    await installRules(runner, other);
    t.equal(runner.restores, 2, 'the stale set is replaced in one restore per family');
    const replaced = await inspectRules(runner, other);
    t.same([replaced.missing, replaced.unexpected], [[], []], 'only the new config is installed');
    t.notMatch(await runner.save('ipv4', 'nat'), /MESH_DNS|MESH_INBOUND/, 'chains of the old config are gone');
    await installRules(runner, set);
    t.equal(await snapshot(runner), installed, 'and back');

    // A restore iptables refuses changes nothing and says which line.
    const refused = await runner.restore('ipv4', '*nat\n:MESH_OUTPUT - [0:0]\n-A MESH_OUTPUT -j NO_SUCH_CHAIN\nCOMMIT\n').then(
      () => undefined,
      (err: unknown) => err as MeshError,
    );
    t.equal(refused?.code, 'MESH_E_TPROXY_IPTABLES');
    t.match(refused?.message, /NO_SUCH_CHAIN/, "iptables-restore's own words are in the message");
    t.equal(await snapshot(runner), installed, 'a refused restore changes nothing');

    const removal = await cli(host, ['remove', '--config', file, '--json']);
    t.equal(removal.code, 0, removal.stderr);
    t.same(JSON.parse(removal.stdout), { backend, removed: clean.expected });
    t.equal(await snapshot(runner), before, 'foreign chains byte-for-byte as before, nothing of ours');
    t.same(await removeRules(runner), { removed: 0 }, 'nothing left to remove');

    // The unit's ExecStopPost after an edit broke agent.yaml: the rules still go (backend detected), with a warning.
    await installRules(runner, set);
    const broken = path.join(dir, 'broken.yaml');
    await writeFile(broken, `${await readFile(file, 'utf8')}\nlog: { level: loud }\n`);
    const fallback = await cli(host, ['remove', '--config', broken, '--json']);
    t.equal(fallback.code, 0, fallback.stderr);
    t.match(fallback.stderr, /warning: MESH_E_CONFIG_INVALID: .*log\.level.*\nwarning: removing our rules with backend auto/);
    t.same(JSON.parse(fallback.stdout), { backend, removed: clean.expected }, 'an invalid agent.yaml does not keep our rules in place');
    t.equal(await snapshot(runner), before, 'and only ours went');
  });
}
