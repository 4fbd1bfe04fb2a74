/**
 * `mesh-controlplane run` (the built program, as systemd starts it) on a port
 * another process holds: it says which address it cannot listen on and exits
 * 1, with what it had started (signing workers, timers, the database, the
 * admin socket) closed. It used to print the error and keep running.
 */
import { existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import t from 'tap';
import { run } from '../../lib/exec.js';
import { repoRoot } from '../../scripts/repo-root.js';
import { childEnv, untracked } from '../support/child.js';
import { tempDir } from '../support/temp-dir.js';

t.setTimeout(120_000);

t.test('a busy listen address: the error, exit 1, nothing left behind', async (t) => {
  const holder = net.createServer();
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => holder.close(() => resolve())));
  const { port } = holder.address() as net.AddressInfo;
  const dataDir = path.join(await tempDir(t, 'cp-busy-'), 'data');
  const main = path.join(repoRoot(), 'dist', 'controlplane', 'main.js');
  const [command, args] = untracked(process.execPath, [
    main,
    'run',
    '--data-dir',
    dataDir,
    '--listen',
    `127.0.0.1:${port}`,
    '--trust-domain',
    'example.org',
  ]);
  // The timeout only ends a program that never exits (the defect); it is no speed check.
  const result = await run(command, args, { env: childEnv(), timeoutMs: 90_000 });
  t.equal(result.signal, null, `it exited by itself${result.signal === null ? '' : ` (killed: ${result.stderr.slice(-2000)})`}`);
  t.equal(result.code, 1, 'exit 1');
  t.match(result.stderr, new RegExp(`MESH_E_CONFIG_INVALID: cannot listen on 127\\.0\\.0\\.1:${port}: .*EADDRINUSE`));
  t.notOk(existsSync(path.join(dataDir, 'admin.sock')), 'no admin socket left');
  t.ok(existsSync(path.join(dataDir, 'controlplane.db')), 'the database it created stays (the next start uses it)');
});
