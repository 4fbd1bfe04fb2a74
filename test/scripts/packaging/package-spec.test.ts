import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import t from 'tap';
import { parse } from 'yaml';
import { agentConfigSchema } from '../../../agent/config/schema.js';
import { AGENT_NODE_FLAGS } from '../../../agent/node-flags.js';
import { controlplaneSchema } from '../../../controlplane/config/schema.js';
import { parseConfigText } from '../../../lib/config-file.js';
import { run } from '../../../lib/exec.js';
import { nfpmConfig, nfpmYaml, type StagedEntry } from '../../../scripts/packaging/nfpm-config.js';
import { copyrightText, debianChangelog, gzipReproducible, lintianOverrides, rfc2822 } from '../../../scripts/packaging/package-docs.js';
import { checkVersion, PACKAGES, packageFileName, wrapperText } from '../../../scripts/packaging/package-spec.js';
import { keepAppFile, packagedMode, productionPackages, withoutHashbang } from '../../../scripts/packaging/stage.js';
import { parseNfpmVersion, parseNodeVersion, sriSha512 } from '../../../scripts/provision-packaging.js';
import { repoRoot } from '../../../scripts/repo-root.js';

const root = repoRoot();
const scripts = { preinstall: '/s/pre', postinstall: '/s/post', preremove: '/s/prerm', postremove: '/s/postrm' };

t.test('package file names follow each format', async (t) => {
  t.equal(packageFileName('mesh-agent', '0.1.0', 'deb'), 'mesh-agent_0.1.0_amd64.deb');
  t.equal(packageFileName('mesh-agent', '0.1.0', 'rpm'), 'mesh-agent-0.1.0.x86_64.rpm');
  t.equal(packageFileName('mesh-controlplane', '0.1.1', 'deb'), 'mesh-controlplane_0.1.1_amd64.deb');
  t.equal(packageFileName('mesh-controlplane', '0.1.1', 'rpm'), 'mesh-controlplane-0.1.1.x86_64.rpm');
});

t.test('versions both formats accept', async (t) => {
  for (const ok of ['0.1.0', '0.1.1', '1.2', '2.0.0~rc1', '1.0.0+git.3']) t.equal(checkVersion(ok), undefined, ok);
  for (const bad of ['', 'v1.0', '1.0-1', '1..0', '1.0 ', 'latest']) t.type(checkVersion(bad), 'string', bad);
});

t.test("wrappers exec the bundled node on the program entry point, the agent's with its V8 flags (its #! line is blanked)", async (t) => {
  const [agent] = PACKAGES['mesh-agent'].programs;
  const [, meshctl] = PACKAGES['mesh-controlplane'].programs;
  t.ok(agent && meshctl);
  if (!agent || !meshctl) return;
  t.equal(
    wrapperText('mesh-agent', agent),
    '#!/bin/sh\n# mesh-agent, from the mesh-agent package: runs it with the Node.js runtime bundled in /usr/lib/mesh-agent.\n' +
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell parameter expansion
      'export MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-2}"\n' +
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell parameter expansion
      'export MALLOC_MMAP_THRESHOLD_="${MALLOC_MMAP_THRESHOLD_:-65536}"\n' +
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell parameter expansion
      'export MALLOC_TRIM_THRESHOLD_="${MALLOC_TRIM_THRESHOLD_:-131072}"\n' +
      `exec /usr/lib/mesh-agent/node/bin/node ${AGENT_NODE_FLAGS.join(' ')} /usr/lib/mesh-agent/app/dist/agent/mesh-agent.js "$@"\n`,
  );
  t.match(
    wrapperText('mesh-controlplane', meshctl),
    /^exec \/usr\/lib\/mesh-controlplane\/node\/bin\/node \/usr\/lib\/mesh-controlplane\/app\/dist\/controlplane\/cli\/main\.js "\$@"$/m,
  );
});

t.test('the wrapper passes its arguments through unchanged', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'mesh-wrapper-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const text = wrapperText('mesh-agent', { command: 'mesh-agent', main: 'x.js' }).replace(
    'exec /usr/lib/mesh-agent/node/bin/node /usr/lib/mesh-agent/app/x.js',
    'exec printf "<%s>"',
  );
  const result = await run('sh', ['-c', text, 'mesh-agent', 'run', '--config', 'a b.yaml', '']);
  t.equal(result.stdout, '<run><--config><a b.yaml><>');
});

t.test("the agent's wrapper sets MALLOC_ARENA_MAX=2 unless the environment has its own", async (t) => {
  const [agent] = PACKAGES['mesh-agent'].programs;
  if (agent === undefined) throw new Error('no mesh-agent program');
  const text = wrapperText('mesh-agent', agent).replace(/^exec .*$/m, 'exec printf "<%s>" "$MALLOC_ARENA_MAX"');
  const env = { ...process.env };
  delete env.MALLOC_ARENA_MAX;
  t.equal((await run('sh', ['-c', text, 'mesh-agent'], { env })).stdout, '<2>');
  t.equal((await run('sh', ['-c', text, 'mesh-agent'], { env: { ...env, MALLOC_ARENA_MAX: '4' } })).stdout, '<4>');
});

t.test(
  "app files: source maps, declarations, dot files, tests, better-sqlite3 build leftovers, Bare addons and other platforms' prebuilds stay out",
  async (t) => {
    const cases: [string, boolean, string?][] = [
      ['dist/agent/main.js', true],
      ['dist/agent/main.js.map', false],
      ['dist/agent/test-things.js', true],
      ['node_modules/zod/index.d.ts', false],
      ['node_modules/zod/index.d.cts', false],
      ['node_modules/better-sqlite3/lib/database.js', true],
      ['node_modules/better-sqlite3/build', true],
      ['node_modules/better-sqlite3/build/Release', true],
      ['node_modules/better-sqlite3/build/Release/better_sqlite3.node', true],
      ['node_modules/better-sqlite3/build/Release/test_extension.node', false],
      ['node_modules/better-sqlite3/build/Release/obj.target', false],
      ['node_modules/better-sqlite3/deps', false],
      ['node_modules/better-sqlite3/deps/sqlite3/sqlite3.c', false],
      ['node_modules/better-sqlite3/src', false],
      ['node_modules/extend/.eslintrc', false, 'dot files'],
      ['node_modules/.bin', false],
      ['node_modules/x/node_modules/.bin/y', false],
      ['node_modules/tar-fs/test/fixtures/a', false, "a dependency's tests"],
      ['node_modules/@scope/pkg/tests', false],
      ['node_modules/@scope/test/index.js', true, 'a package named test is not a test folder'],
      ['node_modules/@grpc/grpc-js-xds/deps/envoy-api/envoy/config/core/v3/base.proto', true, 'the Envoy protos stay'],
      ['node_modules/bare-fs/prebuilds/linux-x64/bare-fs.bare', false, 'an addon of the Bare runtime, never loaded by Node'],
      ['node_modules/bare-fs/index.js', true],
      ['node_modules/x/prebuilds', true],
      ['node_modules/x/prebuilds/linux-x64/x.node', true, 'the packages are linux amd64'],
      ['node_modules/x/prebuilds/android-arm64/x.node', false, 'another platform'],
      ['node_modules/x/prebuilds/darwin-x64', false],
      ['node_modules/a/node_modules/x/prebuilds/linux-arm64/x.node', false],
    ];
    for (const [rel, kept, why] of cases) t.equal(keepAppFile(rel), kept, `${rel}${why ? ` (${why})` : ''}`);
  },
);

t.test('production packages: every name of the tree, less install-only subtrees', async (t) => {
  const tree = {
    dependencies: {
      zod: {},
      '@grpc/grpc-js': { dependencies: { '@grpc/proto-loader': { dependencies: { yargs: {} } } } },
      'better-sqlite3': { dependencies: { bindings: {}, 'prebuild-install': { dependencies: { 'tar-fs': {}, rc: {} } } } },
    },
  };
  t.same(productionPackages(tree), ['@grpc/grpc-js', '@grpc/proto-loader', 'better-sqlite3', 'bindings', 'yargs', 'zod']);
  t.same(productionPackages(tree, []).length, 9);
  t.same(productionPackages({}), []);
  // A package left out of one program's package (the agent never loads the Kubernetes client):
  // its subtree goes, a dependency other packages also need stays.
  const shared = {
    dependencies: { '@kubernetes/client-node': { dependencies: { ws: {}, 'tar-fs': {} } }, consul: { dependencies: { ws: {} } } },
  };
  t.same(productionPackages(shared, ['prebuild-install', ...PACKAGES['mesh-agent'].leaveOut]), ['consul', 'ws']);
  t.same(PACKAGES['mesh-controlplane'].leaveOut, [], 'the control plane loads the Kubernetes client');
});

t.test('modes: folders and the two binaries 0755, everything of the app 0644', async (t) => {
  t.equal(packagedMode('app', true), 0o755);
  t.equal(packagedMode('node/bin/node', false), 0o755);
  t.equal(packagedMode('envoy/envoy', false), 0o755);
  t.equal(packagedMode('app/dist/agent/main.js', false), 0o644);
  t.equal(packagedMode('app/node_modules/better-sqlite3/build/Release/better_sqlite3.node', false), 0o644);
});

t.test('a #! line becomes an empty comment, keeping the line count', async (t) => {
  t.equal(withoutHashbang('#!/usr/bin/env node\nimport x from "y";\n'), '//\nimport x from "y";\n');
  t.equal(withoutHashbang('#!/usr/bin/env node'), '//');
  t.equal(withoutHashbang('import x from "y";\n'), undefined);
});

t.test('nfpm config: sorted contents, fixed owner and mtime, config files flagged, per-format dependencies', async (t) => {
  const entries: StagedEntry[] = [
    { src: '/st/bin/mesh-agent', dst: '/usr/bin/mesh-agent', mode: 0o755 },
    { dst: '/usr/lib/mesh-agent', mode: 0o755 },
    { src: '/repo/packaging/config/agent.yaml', dst: '/etc/mesh-agent/agent.yaml', mode: 0o644, type: 'config|noreplace' },
  ];
  const config = nfpmConfig({ spec: PACKAGES['mesh-agent'], version: '0.1.1', mtime: 1_700_000_000, entries, scripts });
  t.equal(config.name, 'mesh-agent');
  t.equal(config.version, '0.1.1');
  t.equal(config.mtime, '2023-11-14T22:13:20Z');
  t.same(config.contents, [
    {
      src: '/repo/packaging/config/agent.yaml',
      dst: '/etc/mesh-agent/agent.yaml',
      type: 'config|noreplace',
      file_info: { mode: 0o644, mtime: '2023-11-14T22:13:20Z', owner: 'root', group: 'root' },
    },
    {
      src: '/st/bin/mesh-agent',
      dst: '/usr/bin/mesh-agent',
      file_info: { mode: 0o755, mtime: '2023-11-14T22:13:20Z', owner: 'root', group: 'root' },
    },
    { dst: '/usr/lib/mesh-agent', type: 'dir', file_info: { mode: 0o755, mtime: '2023-11-14T22:13:20Z', owner: 'root', group: 'root' } },
  ]);
  t.same(config.scripts, scripts);
  t.same((config.overrides as { deb: { depends: string[] } }).deb.depends, ['libc6 (>= 2.34)', 'libstdc++6', 'libgcc-s1', 'iptables']);
  t.same((config.overrides as { rpm: { depends: string[] } }).rpm.depends, [
    'libc.so.6(GLIBC_2.34)(64bit)',
    'libstdc++.so.6()(64bit)',
    'libgcc_s.so.1()(64bit)',
    'iptables',
  ]);
  const cp = nfpmConfig({ spec: PACKAGES['mesh-controlplane'], version: '0.1.0', mtime: 0, entries: [], scripts });
  t.notOk(JSON.stringify(cp.overrides).includes('iptables'), 'the control plane needs no iptables');
  t.same(
    parse(nfpmYaml({ spec: PACKAGES['mesh-agent'], version: '0.1.1', mtime: 1_700_000_000, entries, scripts })),
    config,
    'the YAML is the config',
  );
});

t.test('the shipped config files are valid as they are', async (t) => {
  const agentFile = path.join(root, 'packaging', 'config', 'agent.yaml');
  const agent = agentConfigSchema().parse(parseConfigText(await readFile(agentFile, 'utf8'), agentFile));
  t.equal(agent.envoy.binary, '/usr/lib/mesh-agent/envoy/envoy', 'the bundled Envoy');
  t.equal(agent.envoy.user, 'mesh-envoy');
  t.equal(agent.dataDir, '/var/lib/mesh-agent');
  t.equal(agent.workloadsDir, '/etc/mesh-agent/workloads.d');
  const cpFile = path.join(root, 'packaging', 'config', 'controlplane.yaml');
  const cp = controlplaneSchema.parse(parseConfigText(await readFile(cpFile, 'utf8'), cpFile));
  t.equal(cp.dataDir, '/var/lib/mesh-controlplane');
  t.equal(cp.listen, '0.0.0.0:8443');
});

t.test('the packages name what the unit files and the config expect', async (t) => {
  for (const spec of Object.values(PACKAGES)) {
    for (const unit of spec.units) {
      const text = await readFile(path.join(root, unit), 'utf8');
      for (const program of spec.programs.filter((p) => text.includes(`/usr/bin/${p.command}`)))
        t.pass(`${unit} runs /usr/bin/${program.command}`);
      t.match(
        text,
        `ExecStart=/usr/bin/${spec.name} run --config /etc/${spec.name}/`,
        `${unit} starts the wrapper with the shipped config`,
      );
    }
  }
});

t.test('version parsers of the packaging tools', async (t) => {
  t.equal(parseNfpmVersion('nfpm: a simple...\n\nGitVersion:    2.45.2\nGitCommit:     unknown\n'), '2.45.2');
  t.equal(parseNfpmVersion('GitVersion:    dev\n'), 'dev');
  t.equal(parseNfpmVersion('nothing'), undefined);
  t.equal(parseNodeVersion('v20.20.2\n'), '20.20.2');
  t.equal(parseNodeVersion('20.20.2'), undefined);
  t.equal(
    sriSha512(new TextEncoder().encode('abc')),
    'sha512-3a81oZNherrMQXNJriBBMRLm+k6JqX6iCp7u5ktV05ohkpkqJ0/BqDa6PCOj/uu9RU1EI2Q86A4qmslPpUyknw==',
  );
});

t.test('Debian docs: a changelog entry of this version and date, gzip without a time, a copyright naming each bundled part', async (t) => {
  const agent = PACKAGES['mesh-agent'];
  t.equal(rfc2822(1_700_000_000), 'Tue, 14 Nov 2023 22:13:20 +0000');
  const log = debianChangelog(agent, '0.1.1', 1_700_000_000);
  t.match(log, /^mesh-agent \(0\.1\.1\) stable; urgency=medium\n/);
  t.match(log, /\n -- vm-mesh maintainers <vm-mesh@example\.org> {2}Tue, 14 Nov 2023 22:13:20 \+0000\n$/);
  const gz = gzipReproducible(log);
  t.same([...gz.subarray(4, 8)], [0, 0, 0, 0], 'no time in the gzip header');
  t.equal(gunzipSync(gz).toString('utf8'), log);
  t.same(gzipReproducible(log), gz);
  t.match(copyrightText(agent, 1_700_000_000), /^Files: \/usr\/lib\/mesh-agent\/envoy\/\*$/m);
  t.match(copyrightText(agent, 1_700_000_000), /^Copyright: 2023 the vm-mesh authors$/m);
  t.notMatch(copyrightText(PACKAGES['mesh-controlplane'], 0), /envoy/);
  t.match(lintianOverrides(agent), /^mesh-agent: embedded-library zlib \[usr\/lib\/mesh-agent\/node\/bin\/node\]$/m);
});
