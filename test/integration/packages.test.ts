/**
 * `npm run package` for real: the packaging tools come from the provisioning
 * cache (nfpm, the Node runtime, Envoy), both packages are built in both
 * formats twice with the same SOURCE_DATE_EPOCH and must be byte-identical;
 * their content is read back with dpkg-deb and rpm, the bundled node runs the
 * programs from an extracted .deb, and lintian and rpmlint find no error.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { run } from '../../lib/exec.js';
import { defaultCacheDir } from '../../scripts/provision.js';
import { provisionPackaging } from '../../scripts/provision-packaging.js';
import { repoRoot } from '../../scripts/repo-root.js';
import { PACKAGE_VERSION, type PackageFile, packageFiles, runPackageBuild, sharedPackages } from '../support/test-packages.js';

t.setTimeout(1_500_000);

const root = repoRoot();
const VERSION = PACKAGE_VERSION;

async function sh(command: string, args: string[], cwd?: string): Promise<string> {
  const result = await run(command, args, { timeoutMs: 600_000, ...(cwd ? { cwd } : {}) });
  if (result.code !== 0) throw new Error(`${command} ${args.join(' ')} exited ${result.code}: ${result.stderr}`);
  return result.stdout;
}

async function sha256(file: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(file))
    .digest('hex');
}

const work = await mkdtemp(path.join(tmpdir(), 'mesh-packages-'));
t.teardown(() => rm(work, { recursive: true, force: true }));
const progress = (line: string) => t.comment(line);
const tools = await provisionPackaging({ root, cacheDir: defaultCacheDir(process.env), progress });
const first = await sharedPackages(t);
const find = (name: string, format: 'deb' | 'rpm'): string => {
  const p = first.find((b: PackageFile) => b.name === name && b.format === format);
  if (!p) throw new Error(`no ${format} of ${name}`);
  return p.path;
};
const agentDeb = find('mesh-agent', 'deb');
const agentRpm = find('mesh-agent', 'rpm');
const cpDeb = find('mesh-controlplane', 'deb');
const cpRpm = find('mesh-controlplane', 'rpm');

t.test('the four packages have the names of their format', async (t) => {
  t.same(first.map((b) => path.basename(b.path)).sort(), [
    'mesh-agent-0.1.1.x86_64.rpm',
    'mesh-agent_0.1.1_amd64.deb',
    'mesh-controlplane-0.1.1.x86_64.rpm',
    'mesh-controlplane_0.1.1_amd64.deb',
  ]);
});

t.test('dpkg-deb -I: version, dependencies, conffiles, the four scripts', async (t) => {
  const agent = await sh('dpkg-deb', ['-I', agentDeb]);
  t.match(agent, /^ Package: mesh-agent$/m);
  t.match(agent, /^ Version: 0\.1\.1$/m);
  t.match(agent, /^ Depends: libc6 \(>= 2\.34\), libstdc\+\+6, libgcc-s1, iptables$/m);
  for (const script of ['preinst', 'postinst', 'prerm', 'postrm']) t.match(agent, new RegExp(`\\s${script}\\s+#!/bin/sh`), script);
  t.equal(await sh('dpkg-deb', ['-f', cpDeb, 'Depends']), 'libc6 (>= 2.34), libstdc++6, libgcc-s1\n');
  const x = path.join(work, 'ctrl-agent');
  await sh('dpkg-deb', ['-e', agentDeb, x]);
  t.equal(await readFile(path.join(x, 'conffiles'), 'utf8'), '/etc/mesh-agent/agent.yaml\n');
  t.match(await readFile(path.join(x, 'prerm'), 'utf8'), /mesh-agent tproxy remove/);
  const y = path.join(work, 'ctrl-cp');
  await sh('dpkg-deb', ['-e', cpDeb, y]);
  t.equal(await readFile(path.join(y, 'conffiles'), 'utf8'), '/etc/mesh-controlplane/controlplane.yaml\n');
});

t.test('dpkg-deb -c: the files, owned by root, dated SOURCE_DATE_EPOCH, without tests or maps', async (t) => {
  const list = await sh('dpkg-deb', ['-c', agentDeb]);
  const lines = list.trim().split('\n');
  const paths = lines.map((l) => l.split(/\s+/).slice(5).join(' '));
  for (const want of [
    './usr/bin/mesh-agent',
    './usr/lib/mesh-agent/node/bin/node',
    './usr/lib/mesh-agent/node/LICENSE',
    './usr/lib/mesh-agent/envoy/envoy',
    './usr/lib/mesh-agent/envoy/LICENSE',
    './usr/lib/mesh-agent/app/package.json',
    './usr/lib/mesh-agent/app/dist/agent/main.js',
    // The bundle the wrapper runs, and what it reads next to itself (scripts/bundle-agent.ts).
    './usr/lib/mesh-agent/app/dist/agent/mesh-agent.js',
    './usr/lib/mesh-agent/app/dist/agent/host-facts-worker.js',
    './usr/lib/mesh-agent/app/dist/agent/envoy-protos.json',
    './usr/lib/mesh-agent/app/dist/agent/mesh/controlplane/v1/controlplane.proto',
    './usr/lib/mesh-agent/app/dist/lib/proto/mesh/controlplane/v1/controlplane.proto',
    './usr/lib/mesh-agent/app/node_modules/@grpc/grpc-js-xds/deps/envoy-api/envoy/config/core/v3/base.proto',
    './etc/mesh-agent/agent.yaml',
    './etc/mesh-agent/workloads.d/',
    './lib/systemd/system/mesh-agent.service',
    './usr/share/doc/mesh-agent/copyright',
    './usr/share/doc/mesh-agent/changelog.gz',
  ]) {
    t.ok(paths.includes(want), want);
  }
  t.notOk(
    paths.some((p) => p.endsWith('.map')),
    'no source maps',
  );
  t.notOk(
    paths.some((p) => p.includes('/dist/test/') || p.includes('/dist/bench/') || p.includes('/dist/scripts/')),
    'no tests, benchmarks or scripts',
  );
  t.notOk(
    paths.some((p) => p.includes('/dist/controlplane/')),
    'the agent carries no control plane',
  );
  t.notOk(
    paths.some((p) => p.includes('/node_modules/prebuild-install/')),
    'no install-time packages',
  );
  t.notOk(
    paths.some((p) => p.includes('/node_modules/@kubernetes/') || p.endsWith('.bare')),
    'no Kubernetes client (only the control plane loads it) and no Bare-runtime addons',
  );
  t.ok(
    lines.every((l) => l.split(/\s+/)[1] === 'root/root'),
    'every entry is root/root',
  );
  t.ok(
    lines.every((l) => l.includes(' 2023-11-14 22:13 ')),
    'every entry is dated SOURCE_DATE_EPOCH',
  );
  t.match(list, /^-rwxr-xr-x root\/root\s+\d+ \S+ \S+ \.\/usr\/bin\/mesh-agent$/m);
  const cp = await sh('dpkg-deb', ['-c', cpDeb]);
  for (const want of [
    './usr/bin/mesh-controlplane',
    './usr/bin/meshctl',
    './usr/lib/mesh-controlplane/app/node_modules/better-sqlite3/build/Release/better_sqlite3.node',
  ]) {
    t.match(cp, ` ${want}\n`, want);
  }
  // The Envoy binary, not dist/lib/envoy/envoy-protos.json (the descriptor the shared lib/ carries).
  t.notMatch(cp, /\/envoy\/envoy$/m, 'no Envoy in the control plane');
});

t.test('rpm -qip/-qlp: version, config files, scripts, dependencies', async (t) => {
  const info = await sh('rpm', ['-qip', agentRpm]);
  t.match(info, /^Name\s+: mesh-agent$/m);
  t.match(info, /^Version\s+: 0\.1\.1$/m);
  t.match(info, /^Architecture: x86_64$/m);
  const files = (await sh('rpm', ['-qlp', agentRpm])).split('\n');
  for (const want of [
    '/usr/bin/mesh-agent',
    '/usr/lib/mesh-agent/node/bin/node',
    '/usr/lib/mesh-agent/envoy/envoy',
    '/etc/mesh-agent/agent.yaml',
    '/etc/mesh-agent/workloads.d',
    '/lib/systemd/system/mesh-agent.service',
  ]) {
    t.ok(files.includes(want), want);
  }
  t.equal(await sh('rpm', ['-qcp', agentRpm]), '/etc/mesh-agent/agent.yaml\n', 'the config file is flagged');
  t.equal(await sh('rpm', ['-qcp', cpRpm]), '/etc/mesh-controlplane/controlplane.yaml\n');
  const flags = await sh('rpm', [
    '-qp',
    '--qf',
    '[%{FILENAMES} %{FILEFLAGS:fflags} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILEMTIMES}\n]',
    agentRpm,
  ]);
  t.match(flags, /^\/etc\/mesh-agent\/agent\.yaml cn root:root 1700000000$/m, 'config(noreplace), root, dated SOURCE_DATE_EPOCH');
  t.ok(
    flags
      .trim()
      .split('\n')
      .every((l) => l.endsWith(' root:root 1700000000')),
    'every file root-owned and dated SOURCE_DATE_EPOCH',
  );
  const scripts = await sh('rpm', ['-qp', '--scripts', agentRpm]);
  for (const s of ['preinstall', 'postinstall', 'preuninstall', 'postuninstall']) t.match(scripts, `${s} scriptlet (using /bin/sh):`, s);
  const requires = (await sh('rpm', ['-qpR', agentRpm])).split('\n');
  for (const r of ['libc.so.6(GLIBC_2.34)(64bit)', 'libstdc++.so.6()(64bit)', 'libgcc_s.so.1()(64bit)', 'iptables'])
    t.ok(requires.includes(r), r);
  t.notOk((await sh('rpm', ['-qpR', cpRpm])).includes('iptables'));
});

t.test('the bundled node runs the programs from an extracted .deb', async (t) => {
  const x = path.join(work, 'x');
  await sh('dpkg-deb', ['-x', agentDeb, x]);
  await sh('dpkg-deb', ['-x', cpDeb, x]);
  const agentLib = path.join(x, 'usr', 'lib', 'mesh-agent');
  const cpLib = path.join(x, 'usr', 'lib', 'mesh-controlplane');
  t.equal(await sh(path.join(agentLib, 'node', 'bin', 'node'), ['--version']), 'v20.20.2\n');
  t.equal(
    await sh(path.join(agentLib, 'node', 'bin', 'node'), [path.join(agentLib, 'app', 'dist', 'agent', 'main.js'), '--version']),
    `mesh-agent ${VERSION}\n`,
  );
  const cpNode = path.join(cpLib, 'node', 'bin', 'node');
  t.equal(await sh(cpNode, [path.join(cpLib, 'app', 'dist', 'controlplane', 'main.js'), '--version']), `mesh-controlplane ${VERSION}\n`);
  t.equal(await sh(cpNode, [path.join(cpLib, 'app', 'dist', 'controlplane', 'cli', 'main.js'), '--version']), `meshctl ${VERSION}\n`);
  // The wire contract and the sqlite addon load from the package alone (a build once left the .proto out).
  const probe = [
    "import Database from 'better-sqlite3';",
    "import { contract } from './dist/lib/proto/contract.js';",
    "const db = new Database(':memory:');",
    "console.log(db.prepare('select sqlite_version() as v').get().v, Object.keys(contract()).includes('Identity'));",
  ].join('\n');
  t.match(await sh(cpNode, ['--input-type=module', '-e', probe], path.join(cpLib, 'app')), /^3\.\d+\.\d+ true\n$/);
  // What the control plane loads only when controlplane.yaml has a kubernetes section: the client library
  // and both Kubernetes components (the catalog sync uses the agent's Consul client, dist/agent/discovery).
  const kubeProbe = [
    "const k8s = await import('@kubernetes/client-node');",
    "const sync = await import('./dist/controlplane/kube/catalog-sync.js');",
    "const attest = await import('./dist/controlplane/kube/kube-attestor.js');",
    'console.log(typeof k8s.KubeConfig, Object.keys(sync).length > 0, Object.keys(attest).length > 0);',
  ].join('\n');
  t.equal(await sh(cpNode, ['--input-type=module', '-e', kubeProbe], path.join(cpLib, 'app')), 'function true true\n');
  t.equal(
    await sh(path.join(agentLib, 'envoy', 'envoy'), ['--version']).then((o) => /\/(\d+\.\d+\.\d+)\//.exec(o)?.[1]),
    tools.envoy.version,
  );
  t.equal(
    await readFile(path.join(x, 'usr', 'bin', 'meshctl'), 'utf8'),
    '#!/bin/sh\n# meshctl, from the mesh-controlplane package: runs it with the Node.js runtime bundled in /usr/lib/mesh-controlplane.\n' +
      'exec /usr/lib/mesh-controlplane/node/bin/node /usr/lib/mesh-controlplane/app/dist/controlplane/cli/main.js "$@"\n',
  );
});

t.test('lintian and rpmlint find no error', async (t) => {
  if (!existsSync('/usr/bin/lintian') || !existsSync('/usr/bin/rpmlint')) {
    t.fail('lintian and rpmlint are not installed: apt-get install lintian rpmlint python3-magic (.ci/run installs them)');
    return;
  }
  for (const deb of [agentDeb, cpDeb]) {
    const result = await run('lintian', ['--fail-on', 'error', '--tag-display-limit', '0', deb], { timeoutMs: 900_000 });
    t.equal(
      result.code,
      0,
      `lintian ${path.basename(deb)}: ${result.stdout
        .split('\n')
        .filter((l) => l.startsWith('E:'))
        .join('\n')}`,
    );
  }
  const result = await run('rpmlint', ['-c', path.join(root, 'packaging', 'rpmlint.toml'), agentRpm, cpRpm], { timeoutMs: 300_000 });
  t.equal(
    result.code,
    0,
    `rpmlint: ${result.stdout
      .split('\n')
      .filter((l) => l.includes(': E: '))
      .join('\n')}`,
  );
  t.match(result.stdout, /0 errors/);
});

t.test('a second build with the same SOURCE_DATE_EPOCH gives byte-identical packages', async (t) => {
  const out = path.join(work, 'b');
  await runPackageBuild(out, ['--version', VERSION]);
  const second = packageFiles(out, VERSION);
  for (const p of first) {
    const other = second.find((b) => b.name === p.name && b.format === p.format);
    t.ok(other, `${p.name} ${p.format} built twice`);
    if (other) t.equal(await sha256(other.path), await sha256(p.path), `${path.basename(p.path)}: same sha256`);
  }
});
