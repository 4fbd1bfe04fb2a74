import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import {
  defaultCacheDir,
  goToolDir,
  goToolSourceHash,
  parseConsulVersion,
  parseEnvoyVersion,
  parseIssuanceLoadVersion,
  parseSvidVerifyVersion,
  pinnedConsulVersion,
  pinnedGrpcGoVersion,
  pinnedSpiffeVersion,
} from '../../scripts/provision.js';
import { repoRoot } from '../../scripts/repo-root.js';
import { emptyTally, summaryLine, tallyingParser } from '../../scripts/run-tests.js';

t.test('version parsers read the tools own output', async (t) => {
  t.equal(parseEnvoyVersion('envoy  version: 5e7a1b9c0f2d4a6b8c0e2f4a6b8c0d2e4f6a8b0c/1.40.0/Clean/RELEASE/BoringSSL\n'), '1.40.0');
  t.equal(parseEnvoyVersion('garbage'), undefined);
  t.equal(parseConsulVersion('Consul v1.22.3\nRevision \nBuild Date 1970-01-01T00:00:01Z\n'), '1.22.3');
  t.equal(parseConsulVersion('nope'), undefined);
  t.equal(parseSvidVerifyVersion('svid-verify go-spiffe/v2 v2.9.0\n'), '2.9.0');
  t.equal(parseSvidVerifyVersion('svid-verify go-spiffe/v2 unknown\n'), undefined);
  t.equal(parseSvidVerifyVersion('Consul v1.22.3'), undefined);
  t.equal(parseIssuanceLoadVersion('issuance-load grpc-go v1.75.0\n'), '1.75.0');
  t.equal(parseIssuanceLoadVersion('issuance-load grpc-go unknown\n'), undefined);
  t.equal(parseIssuanceLoadVersion('svid-verify go-spiffe/v2 v2.9.0\n'), undefined);
});

t.test('the Consul pin comes from the Go helper go.mod', async (t) => {
  t.match(await pinnedConsulVersion(repoRoot()), /^\d+\.\d+\.\d+$/);
  const fake = t.testdir({ test: { tools: { consul: { 'go.mod': 'module x\n\ngo 1.25\n' } } } });
  await t.rejects(pinnedConsulVersion(fake), { code: 'MESH_E_PROVISION_FAILED' });
});

t.test('the go-spiffe pin comes from the svid-verify go.mod', async (t) => {
  t.match(await pinnedSpiffeVersion(repoRoot()), /^2\.\d+\.\d+$/);
  const block = t.testdir({
    test: { tools: { 'svid-verify': { 'go.mod': 'module x\n\ngo 1.25\n\nrequire (\n\tgithub.com/spiffe/go-spiffe/v2 v2.9.0\n)\n' } } },
  });
  t.equal(await pinnedSpiffeVersion(block), '2.9.0', 'a require block works too');
  const other = t.testdir({ test: { tools: { 'svid-verify': { 'go.mod': 'module x\n\nrequire github.com/spiffe/go-spiffe v1.1.0\n' } } } });
  await t.rejects(pinnedSpiffeVersion(other), { code: 'MESH_E_PROVISION_FAILED' }, 'go-spiffe v1 is not the pin');
});

t.test('the grpc-go pin comes from the issuance-load go.mod', async (t) => {
  t.match(await pinnedGrpcGoVersion(repoRoot()), /^1\.\d+\.\d+$/);
  const block = t.testdir({
    test: { tools: { 'issuance-load': { 'go.mod': 'module x\n\ngo 1.25\n\nrequire (\n\tgoogle.golang.org/grpc v1.76.0\n)\n' } } },
  });
  t.equal(await pinnedGrpcGoVersion(block), '1.76.0', 'a require block works too');
  const other = t.testdir({
    test: { tools: { 'issuance-load': { 'go.mod': 'module x\n\nrequire google.golang.org/grpc/examples v0.0.0-2025\n' } } },
  });
  await t.rejects(pinnedGrpcGoVersion(other), { code: 'MESH_E_PROVISION_FAILED' }, 'another module is not the pin');
});

t.test('every Go tool is rebuilt when its own sources change', async (t) => {
  const root = t.testdir({
    test: { tools: { tool: { 'main.go': 'package main\n', 'go.mod': 'module x\n', sub: { 'x.txt': 'ignored' } } } },
  });
  const first = await goToolSourceHash(root, 'tool');
  t.match(first, /^[0-9a-f]{12}$/);
  t.equal(await goToolSourceHash(root, 'tool'), first, 'stable');
  t.equal(await goToolDir(root, '/cache', 'tool', '1.2.3'), `/cache/tool-1.2.3-${first}`, 'the cache folder is named by pin and hash');
  await writeFile(path.join(root, 'test', 'tools', 'tool', 'main.go'), 'package main // changed\n');
  t.not(await goToolSourceHash(root, 'tool'), first, 'a changed file changes it');
  t.not(await goToolDir(root, '/cache', 'tool', '1.2.3'), `/cache/tool-1.2.3-${first}`, 'so the tool is built again, in a new folder');
  for (const tool of ['consul', 'svid-verify', 'issuance-load'])
    t.match(await goToolSourceHash(repoRoot(), tool), /^[0-9a-f]{12}$/, `${tool} has a source hash`);
});

t.test('cache folder: MESH_CACHE_DIR, else $XDG_CACHE_HOME/vm-mesh, else ~/.cache/vm-mesh', async (t) => {
  t.equal(defaultCacheDir({}, '/home/u'), '/home/u/.cache/vm-mesh');
  t.equal(defaultCacheDir({ XDG_CACHE_HOME: '/xdg' }, '/home/u'), '/xdg/vm-mesh');
  t.equal(defaultCacheDir({ MESH_CACHE_DIR: '/var/cache/mesh', XDG_CACHE_HOME: '/xdg' }, '/home/u'), '/var/cache/mesh');
  t.throws(() => repoRoot('/'), /no repository root/);
});

t.test('the closing line CI reads', async (t) => {
  t.equal(summaryLine({ passed: 3, failed: 0, skipped: 0 }), '3 passed, 0 failed');
  t.equal(summaryLine({ passed: 3, failed: 1, skipped: 2 }), '3 passed, 1 failed, 2 skipped');
});

t.test('tally: tests per file, skips, todos, and files that crash', async (t) => {
  const tally = emptyTally();
  const parser = tallyingParser(tally);
  parser.end(`TAP version 14
# Subtest: test/a.test.ts
    # Subtest: passes
        ok 1 - fine
        1..1
    ok 1 - passes
    # Subtest: fails
        not ok 1 - wrong
        1..1
    not ok 1 - fails
    ok 2 - skipped one # SKIP needs root
    ok 3 - later # TODO
    1..4
not ok 1 - test/a.test.ts
# Subtest: test/b.test.ts
    1..0
not ok 2 - test/b.test.ts
# Subtest: test/c.test.ts
    ok 1 - top-level assertion
    1..1
ok 3 - test/c.test.ts
1..3
`);
  t.same(
    { passed: tally.passed, failed: tally.failed, skipped: tally.skipped },
    { passed: 2, failed: 2, skipped: 2 },
    'one pass and one fail in a, a crash in b, a pass in c; skip and todo are skipped',
  );
  t.match(tally.failures, ['test/a.test.ts > fails', 'test/b.test.ts (the file failed outside its tests)']);
});
