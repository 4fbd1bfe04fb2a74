/**
 * The packaged systemd units (systemd/*.service): parsed by this host's
 * `systemd-analyze verify` (no warning at all: an unknown key or a bad value
 * is only a warning to systemd), scored by `systemd-analyze security
 * --offline=yes` against the issue's limits (agent 2.5, control plane 1.5),
 * and checked for the lines the agent and control plane rely on (readiness,
 * reload, privileges), with a comment above every line of [Service].
 * Skipped, with the reason, on a host without systemd-analyze. The booted
 * container test (test/privileged, wip-boot) runs them for real.
 */
import { execFile } from 'node:child_process';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import t from 'tap';
import { EXIT_CONFIG } from '../../lib/startup-config-error.js';
import { tempDir } from '../support/temp-dir.js';

const run = promisify(execFile);
const UNIT_DIR = fileURLToPath(new URL('../../systemd/', import.meta.url));
const LIMITS = { 'mesh-agent': 2.5, 'mesh-controlplane': 1.5 } as const;
type UnitName = keyof typeof LIMITS;
const UNITS = Object.keys(LIMITS) as UnitName[];

async function analyzeSkipReason(): Promise<string | undefined> {
  try {
    const { stdout } = await run('systemd-analyze', ['--version']);
    const version = Number(/systemd (\d+)/.exec(stdout)?.[1] ?? 0);
    return version >= 250 ? undefined : `systemd-analyze ${version} has no security --offline (needs 250 or newer)`;
  } catch (err) {
    return `no systemd-analyze on this host (${(err as Error).message})`;
  }
}
const skip = await analyzeSkipReason();
if (skip !== undefined) process.stderr.write(`# skipping systemd-analyze checks: ${skip}\n`);

const unitText = (name: UnitName) => readFile(path.join(UNIT_DIR, `${name}.service`), 'utf8');

/** key -> values of the [Service] section, and the keys that have no comment line right above them. */
function serviceSection(text: string): { values: Map<string, string[]>; uncommented: string[] } {
  const values = new Map<string, string[]>();
  const uncommented: string[] = [];
  let section = '';
  let previous = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    const header = /^\[(\w+)\]$/.exec(line);
    if (header) section = header[1] as string;
    else if (section === 'Service' && /^\w+=/.test(line)) {
      const [key, ...rest] = line.split('=');
      values.set(key as string, [...(values.get(key as string) ?? []), rest.join('=')]);
      if (!previous.startsWith('#') && !/^\w+=/.test(previous)) uncommented.push(key as string);
    }
    previous = line;
  }
  return { values, uncommented };
}

/**
 * A copy of the unit whose /usr/bin programs are stub scripts in a temp folder
 * (verify checks that ExecStart= programs exist and are executable).
 */
async function stubbedCopy(dir: string, name: UnitName): Promise<string> {
  const stub = path.join(dir, name);
  await writeFile(stub, '#!/bin/sh\n');
  await chmod(stub, 0o755);
  const file = path.join(dir, `${name}.service`);
  await writeFile(file, (await unitText(name)).replaceAll(`/usr/bin/${name}`, stub));
  return file;
}

for (const name of UNITS) {
  t.test(`${name}.service: structure`, async (t) => {
    const { values, uncommented } = serviceSection(await unitText(name));
    const one = (key: string) => values.get(key)?.join(' ');
    t.equal(one('Type'), 'notify', 'readiness through sd_notify');
    t.equal(one('NotifyAccess'), 'all', 'systemd-notify, a child of the main process, sends READY=1');
    t.match(
      one('ExecStart'),
      new RegExp(`^/usr/bin/${name} run --config /etc/${name}/`),
      'runs the packaged program with the packaged config',
    );
    t.equal(one('User'), name, 'its own system user');
    t.equal(one('StateDirectory'), name, 'state in /var/lib/<name>');
    t.equal(one('ProtectSystem'), 'strict');
    t.equal(one('NoNewPrivileges'), 'yes');
    t.equal(one('KillMode'), 'mixed', 'SIGTERM to the main process only: it stops its children itself');
    t.notOk(values.has('MemoryDenyWriteExecute'), 'MemoryDenyWriteExecute kills Node (V8 JIT)');
    t.match(one('SystemCallFilter'), /@system-service @pkey/, 'Node needs @pkey');
    t.match(one('RestrictAddressFamilies'), /AF_NETLINK/, "Node's networkInterfaces() needs netlink");
    t.same(uncommented, [], 'every line of [Service] has a comment above it (or belongs to a commented group)');
  });
}

t.test('mesh-agent.service: privileges and reload', async (t) => {
  const { values } = serviceSection(await unitText('mesh-agent'));
  const caps = (key: string) => (values.get(key)?.join(' ') ?? '').split(/\s+/).filter(Boolean).sort();
  const needed = ['CAP_CHOWN', 'CAP_KILL', 'CAP_NET_ADMIN', 'CAP_SETGID', 'CAP_SETUID'];
  t.same(
    caps('AmbientCapabilities'),
    needed,
    'capture (NET_ADMIN), Envoy as mesh-envoy (SETUID/SETGID), signalling it (KILL), its files (CHOWN)',
  );
  t.same(caps('CapabilityBoundingSet'), needed, 'nothing more can ever be gained');
  t.same(
    values.get('ExecReload'),
    ['/usr/bin/mesh-agent config check --config /etc/mesh-agent/agent.yaml', '/bin/kill -HUP $MAINPID'],
    'reload checks the file, then is SIGHUP',
  );
  t.match(values.get('ExecStopPost')?.[0], /^-\/usr\/bin\/mesh-agent tproxy remove /, 'no capture rule outlives the agent');
  t.same(values.get('RestartPreventExitStatus'), [String(EXIT_CONFIG)], "a bad agent.yaml (run's exit code) ends the restarts");
});

t.test('mesh-controlplane.service: no capabilities', async (t) => {
  const { values } = serviceSection(await unitText('mesh-controlplane'));
  t.same(values.get('CapabilityBoundingSet'), [''], 'an empty bounding set');
  t.notOk(values.has('AmbientCapabilities'));
});

t.test('systemd-analyze verify: no warning', { skip: skip ?? false }, async (t) => {
  const dir = await tempDir(t);
  const files = await Promise.all(UNITS.map((name) => stubbedCopy(dir, name)));
  const { stdout, stderr } = await run('systemd-analyze', ['verify', '--man=no', ...files]);
  t.equal(`${stdout}${stderr}`.trim(), '', 'systemd parses every line');
});

for (const name of UNITS) {
  t.test(`systemd-analyze security --offline: ${name} at most ${LIMITS[name]}`, { skip: skip ?? false }, async (t) => {
    const dir = await tempDir(t);
    const file = await stubbedCopy(dir, name);
    const { stdout } = await run('systemd-analyze', ['security', '--offline=yes', '--no-pager', file], { cwd: dir });
    const score = Number(/Overall exposure level for [^:]+: ([\d.]+)/.exec(stdout)?.[1]);
    t.ok(Number.isFinite(score), `a score in the output: ${stdout.split('\n').at(-2)}`);
    t.ok(score <= LIMITS[name], `${name}: exposure ${score} <= ${LIMITS[name]}`);
  });
}
