/**
 * `npm run demo -- --check` as a user runs it (the compiled script, after the
 * build npm test does): control plane, Consul, agent and Envoy come up, web
 * reaches api over mTLS with its SPIFFE ID, plaintext is refused, exit 0, and
 * everything is stopped and removed afterwards.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { run } from '../../lib/exec.js';
import { repoRoot } from '../../scripts/repo-root.js';
import { childEnv, untracked } from '../support/child.js';
import { tempDir } from '../support/temp-dir.js';

t.setTimeout(240_000);

t.test('npm run demo -- --check', async (t) => {
  const base = await tempDir(t, 'demo-');
  const dir = path.join(base, 'demo');
  const script = path.join(repoRoot(), 'dist', 'scripts', 'demo.js');
  const [command, args] = untracked(process.execPath, [script, '--check']);
  const result = await run(command, args, { env: { ...childEnv(), MESH_DEMO_DIR: dir }, timeoutMs: 200_000 });
  if (result.code !== 0) {
    t.comment(`${result.stdout}\n${result.stderr.slice(-3000)}`);
    // The demo keeps its logs when a check fails; this test's folder goes at its end, so show them here.
    const logs = path.join(dir, 'logs');
    for (const name of existsSync(logs) ? readdirSync(logs) : []) {
      t.comment(`--- the end of ${name} ---\n${readFileSync(path.join(logs, name), 'utf8').slice(-6000)}`);
    }
  }
  t.equal(result.code, 0, 'exit 0');
  t.match(result.stdout, /answer {3}api saw peer spiffe:\/\/demo\.mesh\/ns\/demo\/sa\/web/);
  t.match(result.stdout, /refused {2}plaintext to api's mesh port/);
  t.match(result.stdout, /node demo-vm: healthy/);
  t.match(result.stdout, /denied {3}probe -> api: HTTP 403/);
  t.match(result.stdout, /allowed {2}web -> api: HTTP 200/);
  t.match(result.stdout, /\napi +\d+ +probe +1 +1 +consul +ok\n/, 'status lists each caller of api: probe');
  t.match(result.stdout, /\napi +\d+ +web +1 +1 +consul +ok\n/, 'and web');
  t.match(result.stdout, /AuthorizationPolicy\/api-callers +1 +applied/);
  t.match(result.stdout, /demo check passed/);
  t.notOk(existsSync(dir), 'the demo removed its folder');
});
