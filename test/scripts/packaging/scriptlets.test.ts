import path from 'node:path';
import t from 'tap';
import { run } from '../../../lib/exec.js';
import { PACKAGES } from '../../../scripts/packaging/package-spec.js';
import { readScripts, scriptHeader, shellQuote } from '../../../scripts/packaging/scriptlets.js';
import { repoRoot } from '../../../scripts/repo-root.js';

const common = path.join(repoRoot(), 'packaging', 'scripts', 'common.sh');

async function action(phase: string, ...args: string[]): Promise<string> {
  const result = await run('sh', ['-c', `. "$0"; mesh_action "$@"`, common, phase, ...args]);
  return result.stdout.trim();
}

t.test('mesh_action reads dpkg action words', async (t) => {
  t.equal(await action('preinstall', 'install'), 'install');
  t.equal(await action('preinstall', 'install', '0.1.0'), 'install', 'a reinstall after remove');
  t.equal(await action('preinstall', 'upgrade', '0.1.0'), 'upgrade');
  t.equal(await action('postinstall', 'configure', ''), 'install', 'first configure: no old version');
  t.equal(await action('postinstall', 'configure'), 'install');
  t.equal(await action('postinstall', 'configure', '0.1.0'), 'upgrade');
  t.equal(await action('preremove', 'remove'), 'remove');
  t.equal(await action('preremove', 'upgrade', '0.1.1'), 'upgrade');
  t.equal(await action('postremove', 'remove'), 'remove');
  t.equal(await action('postremove', 'purge'), 'purge');
  t.equal(await action('postremove', 'upgrade', '0.1.1'), 'upgrade');
  for (const odd of ['abort-install', 'abort-upgrade', 'failed-upgrade', 'disappear'])
    t.equal(await action('postremove', odd), 'none', odd);
  t.equal(await action('postinstall', 'abort-remove'), 'none');
  t.equal(await action('preremove', 'deconfigure'), 'none');
});

t.test("mesh_action reads rpm's instance counts", async (t) => {
  t.equal(await action('preinstall', '1'), 'install');
  t.equal(await action('preinstall', '2'), 'upgrade');
  t.equal(await action('postinstall', '1'), 'install');
  t.equal(await action('postinstall', '3'), 'upgrade', 'two old versions installed');
  t.equal(await action('preremove', '0'), 'remove');
  t.equal(await action('preremove', '1'), 'upgrade');
  t.equal(await action('postremove', '0'), 'remove');
  t.equal(await action('postremove', '1'), 'upgrade');
});

t.test('the header names each package own users, folders and purge paths', async (t) => {
  const agent = scriptHeader(PACKAGES['mesh-agent']);
  t.match(agent, /^PACKAGE=mesh-agent$/m);
  t.match(agent, /^SERVICE=mesh-agent\.service$/m);
  t.match(agent, /^PURGE_PATHS='\/etc\/mesh-agent \/var\/lib\/mesh-agent'$/m);
  t.match(agent, /^TPROXY_CLEANUP=yes$/m);
  t.match(agent, /^ {2}mesh_user mesh-agent \/var\/lib\/mesh-agent 'mesh-agent'$/m);
  t.match(agent, /^ {2}mesh_user mesh-envoy \/nonexistent 'mesh-agent Envoy proxy'$/m);
  t.match(agent, /^ {2}mesh_dir \/var\/lib\/mesh-agent mesh-agent 0710$/m);
  const cp = scriptHeader(PACKAGES['mesh-controlplane']);
  t.match(cp, /^TPROXY_CLEANUP=no$/m);
  t.match(cp, /^ {2}mesh_dir \/var\/lib\/mesh-controlplane mesh-controlplane 0700$/m);
  t.notMatch(cp, /mesh-envoy/);
  t.equal(shellQuote("it's"), `'it'\\''s'`);
});

t.test('every script is valid POSIX sh (sh -n) and carries the shared logic', async (t) => {
  for (const spec of Object.values(PACKAGES)) {
    const texts = await readScripts(repoRoot(), spec);
    for (const [phase, text] of Object.entries(texts)) {
      t.match(text, /^#!\/bin\/sh\n/, `${spec.name} ${phase}: shebang`);
      t.match(text, /^mesh_action\(\) \{$/m, `${spec.name} ${phase}: mesh_action`);
      const check = await run('sh', ['-n', '-c', text]);
      t.equal(check.code, 0, `${spec.name} ${phase}: sh -n ${check.stderr}`);
    }
  }
});

t.test('a script run on a host without systemd: what each action does, with the commands faked', async (t) => {
  const texts = await readScripts(repoRoot(), PACKAGES['mesh-agent']);
  // getent/useradd/groupadd/install/rm are shell functions that log; /run/systemd/system is tested as is.
  const fakes = ['getent', 'useradd', 'groupadd', 'install', 'rm', 'systemctl']
    .map((c) => `${c}() { echo "${c} $*" >&2; ${c === 'getent' ? 'return 2;' : 'return 0;'} }`)
    .join('\n');
  const runPhase = async (phase: keyof typeof texts, ...args: string[]) => {
    const text = texts[phase]
      .replace('set -e\n', `set -e\n${fakes}\nmesh_systemd() { return 1; }\n`)
      .replace('command -v mesh-agent >/dev/null 2>&1', 'false');
    const result = await run('sh', ['-c', text, phase, ...args]);
    t.equal(result.code, 0, `${phase} ${args.join(' ')} exits 0`);
    return result.stderr;
  };
  const install = await runPhase('preinstall', 'install');
  t.match(install, /groupadd --system mesh-agent/);
  t.match(
    install,
    /useradd --system --gid mesh-agent --home-dir \/var\/lib\/mesh-agent --no-create-home --shell \S+nologin --comment mesh-agent mesh-agent/,
  );
  t.match(install, /useradd --system --gid mesh-envoy/);
  const post = await runPhase('postinstall', 'configure', '');
  t.match(post, /install -d -m 0710 -o mesh-agent -g mesh-agent \/var\/lib\/mesh-agent/);
  t.equal(await runPhase('postremove', 'remove'), '', 'remove deletes nothing');
  t.equal(await runPhase('postremove', '0'), '', 'rpm erase deletes nothing');
  t.match(await runPhase('postremove', 'purge'), /rm -rf \/etc\/mesh-agent\nrm -rf \/var\/lib\/mesh-agent/);
  t.equal(await runPhase('preremove', 'upgrade', '0.1.1'), '', 'an upgrade stops nothing');
});
