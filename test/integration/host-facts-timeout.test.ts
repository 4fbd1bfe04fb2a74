/**
 * The host-facts timeout holds against the real systeminformation even when a
 * command it runs hangs: systeminformation runs `hostname -f` with execSync,
 * which blocks its thread, so the facts are read in a child process and the
 * timeout runs on the agent's own. A `hostname` that blocks until the test
 * releases it is put first on PATH. (Were systeminformation run on this thread,
 * the wait for the hanging command below could never poll: the test would hang.)
 */
import { execFileSync } from 'node:child_process';
import { constants } from 'node:fs';
import { chmod, open, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { collectHostFacts, hostFacts } from '../../agent/run/host-facts.js';
import { isMeshError } from '../../lib/errors.js';
import { FakeClock } from '../fakes/clock.js';
import { tempDir } from '../support/temp-dir.js';
import { waitFor } from '../support/wait.js';

t.setTimeout(60_000);

/** Processes whose command line mentions dir (our blocked `hostname`). */
async function processesUsing(dir: string): Promise<number> {
  let n = 0;
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(dir)) n++;
  }
  return n;
}

/** This process's children that run the host-facts worker. */
async function factsChildren(): Promise<number> {
  let n = 0;
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid !== process.pid) continue;
    if ((await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).includes('host-facts-worker')) n++;
  }
  return n;
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
  const dir = await tempDir(t, 'host-facts-');
  const fifo = path.join(dir, 'release');
  execFileSync('mkfifo', [fifo]);
  // Blocks until the test opens the fifo for writing.
  await writeFile(path.join(dir, 'hostname'), `#!/bin/sh\nexec cat ${fifo}\n`);
  await chmod(path.join(dir, 'hostname'), 0o755);
  const savedPath = process.env.PATH;
  process.env.PATH = `${dir}:${savedPath}`;
  // Whatever happens below, the blocked `hostname` is released before the folder goes (teardowns run last first).
  t.teardown(async () => {
    process.env.PATH = savedPath;
    await release(fifo, 'vm1.example\n');
    await waitFor(async () => ((await processesUsing(dir)) === 0 ? true : undefined), { what: 'the blocked hostname to exit' });
  });

  // The timeout is driven by a fake clock once the command is known to hang, so a slow start of the
  // child process on a busy machine cannot make it fire before systeminformation got that far.
  const clock = new FakeClock();
  const pending = collectHostFacts({ source: hostFacts, timeoutMs: 5000, clock }).catch((e: unknown) => e);
  await waitFor(async () => ((await processesUsing(dir)) > 0 ? true : undefined), {
    timeoutMs: 30_000,
    what: 'systeminformation to run the hanging hostname',
  });
  process.env.PATH = savedPath;
  // This thread is free while the child process is blocked in execSync: the timer fires and the start fails.
  clock.advance(5000);
  const err = await pending;
  t.ok(isMeshError(err, 'MESH_E_HOST_FACTS'), 'rejected although the child process is blocked in execSync');
  t.match((err as Error).message, /did not finish within 5000 ms; set advertiseAddress/);
  t.ok((await processesUsing(dir)) > 0, 'the command still hangs');
  await waitFor(async () => ((await factsChildren()) === 0 ? true : undefined), { what: 'the host-facts child to be killed' });
  t.pass('the host-facts child process is gone although its command hangs');

  // Release it; the child process was killed at the timeout, the command now ends, and nothing is left.
  await release(fifo, 'vm1.example\n');
  await waitFor(async () => ((await processesUsing(dir)) === 0 ? true : undefined), { what: 'the blocked hostname to exit' });
});
