/**
 * The host-facts timeout holds against the real systeminformation even when a
 * command it runs hangs: systeminformation runs `hostname -f` with execSync,
 * which blocks its thread, so the facts are read in a child process and the
 * timeout runs on the agent's own. A `hostname` that blocks until the test
 * releases it is put first on PATH. (Were systeminformation run on this thread,
 * the wait for the hanging command below could never poll: the test would hang.)
 */
import { execFileSync, spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { chmod, open, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import t, { type Test } from 'tap';
import { collectHostFacts, hostFacts } from '../../agent/run/host-facts.js';
import { isMeshError } from '../../lib/errors.js';
import { repoRoot } from '../../scripts/repo-root.js';
import { FakeClock } from '../fakes/clock.js';
import { processesWith, processRef, statFields } from '../support/child.js';
import { tempDir } from '../support/temp-dir.js';
import { waitFor } from '../support/wait.js';

t.setTimeout(60_000);

/** The children of `parent` (default: this process) that run the host-facts worker and are not zombies, by pid. */
function factsChildren(parent = process.pid): number[] {
  return processesWith('host-facts-worker')
    .map((p) => p.pid)
    .filter((pid) => {
      const fields = statFields(pid);
      return fields !== undefined && Number(fields[1]) === parent && fields[0] !== 'Z';
    });
}

/** A hanging `hostname` first on PATH (in a new folder), released by writing to its fifo. */
async function hangingHostname(t: Test): Promise<{ dir: string; fifo: string }> {
  const dir = await tempDir(t, 'host-facts-');
  const fifo = path.join(dir, 'release');
  execFileSync('mkfifo', [fifo]);
  // Blocks until the test opens the fifo for writing.
  await writeFile(path.join(dir, 'hostname'), `#!/bin/sh\nexec cat ${fifo}\n`);
  await chmod(path.join(dir, 'hostname'), 0o755);
  return { dir, fifo };
}

/**
 * Releases a `cat` blocked on the fifo, if there is one: a non-blocking open for
 * writing fails with ENXIO when nothing reads it (then there is nothing to release).
 */
async function release(fifo: string, text: string): Promise<void> {
  const handle = await open(fifo, constants.O_WRONLY | constants.O_NONBLOCK).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENXIO' || err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (handle === undefined) return;
  try {
    await handle.write(text);
  } finally {
    await handle.close();
  }
}

t.test('a hanging `hostname -f` does not hold the start: MESH_E_HOST_FACTS at the timeout', async (t) => {
  const { dir, fifo } = await hangingHostname(t);
  const savedPath = process.env.PATH;
  process.env.PATH = `${dir}:${savedPath}`;
  // Whatever happens below, the blocked `hostname` is released before the folder goes (teardowns run last first).
  t.teardown(async () => {
    process.env.PATH = savedPath;
    await release(fifo, 'vm1.example\n');
    await waitFor(async () => (processesWith(dir).length === 0 ? true : undefined), { what: 'the blocked hostname to exit' });
  });

  // The timeout is driven by a fake clock once the command is known to hang, so a slow start of the
  // child process on a busy machine cannot make it fire before systeminformation got that far.
  const clock = new FakeClock();
  const pending = collectHostFacts({ source: hostFacts, timeoutMs: 5000, clock }).catch((e: unknown) => e);
  await waitFor(async () => (processesWith(dir).length > 0 ? true : undefined), {
    timeoutMs: 30_000,
    what: 'systeminformation to run the hanging hostname',
  });
  process.env.PATH = savedPath;
  // This thread is free while the child process is blocked in execSync: the timer fires and the start fails.
  clock.advance(5000);
  const err = await pending;
  t.ok(isMeshError(err, 'MESH_E_HOST_FACTS'), 'rejected although the child process is blocked in execSync');
  t.match((err as Error).message, /did not finish within 5000 ms; set advertiseAddress/);
  t.ok(processesWith(dir).length > 0, 'the command still hangs');
  await waitFor(async () => (factsChildren().length === 0 ? true : undefined), { what: 'the host-facts child to be killed' });
  t.pass('the host-facts child process is gone although its command hangs');

  // Release it; the child process was killed at the timeout, the command now ends, and nothing is left.
  await release(fifo, 'vm1.example\n');
  await waitFor(async () => (processesWith(dir).length === 0 ? true : undefined), { what: 'the blocked hostname to exit' });
});

t.test('a process that exits while the facts are read takes the host-facts child with it', async (t) => {
  const { dir, fifo } = await hangingHostname(t);
  t.teardown(async () => {
    await release(fifo, 'vm1.example\n');
    await waitFor(async () => (processesWith(dir).length === 0 ? true : undefined), { what: 'the blocked hostname to exit' });
  });
  // The built module (npm run build), as the agent runs it: reads the facts, exits on a line on stdin.
  // Outside dir: processesWith(dir) finds the hanging command's processes only.
  const script = path.join(await tempDir(t, 'host-facts-script-'), 'exit-while-reading.mjs');
  const module = pathToFileURL(path.join(repoRoot(), 'dist', 'agent', 'run', 'host-facts.js')).href;
  await writeFile(
    script,
    `const { hostFacts } = await import(${JSON.stringify(module)});\n` +
      'hostFacts(new AbortController().signal).catch(() => {});\n' +
      "process.stdin.once('data', () => process.exit(0));\n",
  );
  const { NODE_OPTIONS: _, ...env } = process.env;
  const parent = spawn(process.execPath, [script], {
    env: { ...env, PATH: `${dir}:${process.env.PATH}` },
    stdio: ['pipe', 'ignore', 'inherit'],
  });
  const exited = new Promise<number | null>((resolve) => parent.once('exit', (code) => resolve(code)));
  t.teardown(() => {
    if (parent.exitCode === null) parent.kill('SIGKILL');
  });
  await waitFor(async () => (processesWith(dir).length > 0 ? true : undefined), {
    timeoutMs: 30_000,
    what: 'systeminformation (in the child) to run the hanging hostname',
  });
  const children = factsChildren(parent.pid);
  t.equal(children.length, 1, 'one host-facts child, blocked in execSync');
  parent.stdin?.write('exit\n');
  t.equal(await exited, 0, 'the reading process exited');
  await waitFor(async () => (children.every((pid) => processRef(pid) === undefined) ? true : undefined), {
    what: 'the host-facts child to be gone',
  });
  t.pass('the host-facts child is gone although its command still hangs');
  t.ok(processesWith(dir).length > 0, 'the command itself still hangs (released at the end)');
});
