/**
 * The agent's bundle (scripts/bundle-agent.ts, part of `npm run build`): what the
 * package and startAgentProcess run. The integration tests run the agent from
 * it; these check what they would only show as a failed start.
 */
import { fork } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { AGENT_NODE_FLAGS } from '../../agent/node-flags.js';
import type { HostFactsMessage } from '../../agent/run/host-facts.js';
import { ENVOY_DESCRIPTOR_FILE } from '../../lib/envoy/protos.js';
import { run } from '../../lib/exec.js';
import { packageVersion } from '../../lib/version.js';
import { AGENT_BUNDLE } from '../../scripts/bundle-agent.js';
import { repoRoot } from '../../scripts/repo-root.js';

const bundle = path.join(repoRoot(), AGENT_BUNDLE);
const dir = path.dirname(bundle);

t.test("the bundle keeps agent/main.ts's #! line and runs the agent's commands", async (t) => {
  const [ours] = (await readFile(bundle, 'utf8')).split('\n', 1);
  const [source] = (await readFile(path.join(repoRoot(), 'agent', 'main.ts'), 'utf8')).split('\n', 1);
  t.equal(ours, source);
  const result = await run(process.execPath, [bundle, 'version']);
  t.equal(result.code, 0, result.stderr);
  t.equal(result.stdout.trim(), `mesh-agent ${packageVersion()}`, 'the version from the package.json two folders up, as from dist/lib');
});

t.test("zod's messages in the bundle are English only, and still name the field", async (t) => {
  const text = await readFile(bundle, 'utf8');
  t.notMatch(text, /Ungültige Eingabe/, "the German locale's text is left out");
  const dirOfCase = await mkdtemp(path.join(tmpdir(), 'mesh-bundle-'));
  t.teardown(() => rm(dirOfCase, { recursive: true, force: true }));
  const config = path.join(dirOfCase, 'agent.json');
  await writeFile(config, JSON.stringify({ nodeName: 5 }));
  const result = await run(process.execPath, [bundle, 'config', 'check', '--config', config]);
  t.equal(result.code, 1);
  t.match(result.stderr, /MESH_E_CONFIG_INVALID/);
  t.match(result.stderr, /nodeName: Invalid input: expected string, received number/);
});

t.test("under the agent's V8 flags (--jitless: no WebAssembly, so no fetch), doctor reaches Consul, silently", async (t) => {
  t.ok(AGENT_NODE_FLAGS.includes('--jitless'), 'the flags this test is about');
  const seen: string[] = [];
  const consul = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(req.url === '/v1/status/leader' ? '"127.0.0.1:8300"' : '{}');
  });
  await new Promise<void>((r) => consul.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    consul.closeAllConnections();
    consul.close();
  });
  const dirOfCase = await mkdtemp(path.join(tmpdir(), 'mesh-bundle-'));
  t.teardown(() => rm(dirOfCase, { recursive: true, force: true }));
  const config = path.join(dirOfCase, 'agent.json');
  const address = `127.0.0.1:${(consul.address() as AddressInfo).port}`;
  await writeFile(
    config,
    JSON.stringify({ dataDir: path.join(dirOfCase, 'data'), workloadsDir: path.join(dirOfCase, 'w'), consul: { address } }),
  );
  const result = await run(process.execPath, [...AGENT_NODE_FLAGS, bundle, 'doctor', '--config', config, '--json']);
  t.equal(result.stderr, '', 'nothing on stderr: no V8 warning about conflicting flags');
  const doc = JSON.parse(result.stdout) as { checks: Array<{ id: string; level: string; detail: string }> };
  const check = doc.checks.find((c) => c.id === 'consul');
  t.equal(check?.level, 'pass', check?.detail ?? 'no consul check');
  t.match(check?.detail, /leader 127\.0\.0\.1:8300/);
  t.ok(seen.includes('GET /v1/status/leader'), 'the request reached the server');
  const typeOf = await run(process.execPath, [...AGENT_NODE_FLAGS, '-p', 'typeof WebAssembly']);
  t.equal(typeOf.stdout.trim(), 'undefined', 'the flags do take WebAssembly away');
});

t.test('what the agent reads next to its module is next to the bundle', async (t) => {
  for (const rel of [ENVOY_DESCRIPTOR_FILE, 'host-facts-worker.js', path.join('mesh', 'controlplane', 'v1', 'controlplane.proto')]) {
    t.ok(existsSync(path.join(dir, rel)), rel);
  }
  t.same(
    await readFile(path.join(dir, ENVOY_DESCRIPTOR_FILE)),
    await readFile(path.join(repoRoot(), 'dist', 'lib', 'envoy', ENVOY_DESCRIPTOR_FILE)),
    'the same Envoy descriptor',
  );
});

t.test('the bundled host-facts worker answers as host-facts.ts expects, and exits by itself', async (t) => {
  const { NODE_OPTIONS: _, ...env } = process.env;
  const child = fork(path.join(dir, 'host-facts-worker.js'), [], {
    execArgv: [...AGENT_NODE_FLAGS],
    env,
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    serialization: 'json',
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const message = await new Promise<HostFactsMessage>((resolve, reject) => {
    child.once('message', (m: HostFactsMessage) => resolve(m));
    child.once('error', reject);
  });
  t.equal(message.error, undefined);
  t.type(message.facts?.os, 'string');
  t.match(message.facts?.address ?? '', /^\d+\.\d+\.\d+\.\d+$/);
  t.equal(await exited, 0, 'the child exits once it has answered');
  t.equal(stderr, '', 'nothing on stderr');
});
