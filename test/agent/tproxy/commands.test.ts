import path from 'node:path';
import t from 'tap';
import { agentProgram } from '../../../agent/program.js';
import { runChecked } from '../../../lib/exec.js';
import { repoRoot } from '../../../scripts/repo-root.js';
import { runProgram } from '../../support/cli.js';
import { tempDir } from '../../support/temp-dir.js';
import { agentConfigFile } from '../../support/tproxy-config.js';

const mainJs = path.join(repoRoot(), 'dist', 'agent', 'main.js');

t.test('tproxy plan prints the restore input per family and touches no iptables', async (t) => {
  const dir = await tempDir(t, 'mesh-tproxy-plan-');
  const file = await agentConfigFile(dir, 'nft', 'ipv6: "off"');
  // The built program, as a user runs it (no root needed: envoy.user is numeric, nothing is resolved by name).
  const r = await runChecked(process.execPath, [mainJs, 'tproxy', 'plan', '--config', file], 'MESH_E_PROCESS_START', { timeoutMs: 60_000 });
  const lines = r.stdout.split('\n');
  t.equal(lines[0], '# ipv4: iptables-restore --noflush');
  t.equal(lines[1], '*nat');
  t.ok(lines.includes(':MESH_OUTPUT - [0:0]'));
  t.notMatch(r.stdout, /# ipv6/, 'no IPv6 rules with ipv6 off');
  t.ok(lines.some((l) => l.startsWith('-A MESH_INBOUND -p tcp -m tcp --dport 8080 ')));
  t.ok(lines.some((l) => l.includes('-d 10.77.0.200/32') && l.includes('control plane')));
  const json = await runProgram(agentProgram(), ['tproxy', 'plan', '--config', file, '--json']);
  t.equal(json.code, 0, json.err);
  const doc = JSON.parse(json.out) as { facts: { envoyUid: number; inboundPorts: number[] }; plan: Record<string, string> };
  t.same(doc.facts.inboundPorts, [8080, 9090]);
  t.equal(doc.facts.envoyUid, 4242);
  t.equal(`# ipv4: iptables-restore --noflush\n${doc.plan.ipv4}`, r.stdout);
});

t.test('tproxy commands explain themselves; bad flags are usage errors', async (t) => {
  for (const name of ['plan', 'status', 'remove']) {
    const help = await runProgram(agentProgram(), ['tproxy', name, '--help']);
    t.equal(help.code, 0);
    t.match(help.out, `Usage: mesh-agent tproxy ${name} [--config FILE]`);
  }
  const dir = await tempDir(t, 'mesh-tproxy-plan-');
  const file = await agentConfigFile(dir, 'nft', '');
  const bad = await runProgram(agentProgram(), ['tproxy', 'plan', '--config', file, '--agent-uid', 'root']);
  t.equal(bad.code, 2);
  t.match(bad.err, /MESH_E_USAGE: --agent-uid root/);
  const disabled = await runProgram(agentProgram(), ['tproxy', 'plan', '--config', path.join(dir, 'missing.yaml')]);
  t.equal(disabled.code, 1);
  t.match(disabled.err, /missing\.yaml/);
});
