/**
 * The capabilities an iptables program gets from the agent, for real: a
 * non-root process holding the packaged unit's five ambient capabilities
 * (CAP_NET_ADMIN, CAP_SETUID, CAP_SETGID, CAP_KILL, CAP_CHOWN: set up with
 * setpriv as root) computes hostRunnerOptions() and runs a program through
 * its prefix: that program holds CAP_NET_ADMIN only. Without the prefix it
 * would hold all five.
 */
import path from 'node:path';
import t from 'tap';
import { parseCapabilities } from '../../agent/tproxy/privileges.js';
import { run } from '../../lib/exec.js';
import { repoRoot } from '../../scripts/repo-root.js';
import { privilegedSkipReason } from '../support/netns.js';

const skip = await privilegedSkipReason();
if (skip !== undefined) process.stderr.write(`# skipping privileged tests: ${skip}\n`);

const UNIT_CAPS = '+net_admin,+setuid,+setgid,+kill,+chown';

/** Runs `node -e SCRIPT` as uid/gid 65534 with the unit's ambient capabilities; returns its stdout. */
async function asUnitUser(script: string): Promise<string> {
  const r = await run('setpriv', [
    '--reuid',
    '65534',
    '--regid',
    '65534',
    '--clear-groups',
    `--inh-caps=${UNIT_CAPS}`,
    `--ambient-caps=${UNIT_CAPS}`,
    '--',
    process.execPath,
    '--input-type=module',
    '-e',
    script,
  ]);
  if (r.code !== 0) throw new Error(`node as 65534 exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

t.test('iptables programs run with exactly CAP_NET_ADMIN', { skip: skip ?? false }, async (t) => {
  const runner = path.join(repoRoot(), 'dist', 'agent', 'tproxy', 'runner-exec.js');
  const out = await asUnitUser(`
    import { spawnSync } from 'node:child_process';
    import { readFileSync } from 'node:fs';
    const { hostRunnerOptions } = await import(${JSON.stringify(runner)});
    const options = await hostRunnerOptions();
    const [command, ...args] = [...(options.commandPrefix ?? []), 'cat', '/proc/self/status'];
    const child = spawnSync(command, args, { encoding: 'utf8' });
    process.stdout.write(JSON.stringify({ options, self: readFileSync('/proc/self/status', 'utf8'), child: child.stdout }));
  `);
  const { options, self, child } = JSON.parse(out) as { options: { commandPrefix?: string[] }; self: string; child: string };
  const mine = parseCapabilities(self);
  t.equal(mine.ambient, 0x10e1n, 'the agent-like process holds the five ambient capabilities of the unit');
  t.same(
    options.commandPrefix,
    ['setpriv', '--inh-caps=-all,+net_admin', '--ambient-caps=-all,+net_admin', '--'],
    'hostRunnerOptions gives the setpriv prefix',
  );
  const caps = parseCapabilities(child);
  t.equal(caps.effective, 0x1000n, 'the program run through it: CapEff is CAP_NET_ADMIN only');
  t.equal(caps.permitted, 0x1000n, 'CapPrm: CAP_NET_ADMIN only');
  t.equal(caps.ambient, 0x1000n, 'CapAmb: CAP_NET_ADMIN only');
});
