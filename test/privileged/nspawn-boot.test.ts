/**
 * The booted-container harness itself (test/support/nspawn.ts): the cached
 * bookworm rootfs boots with systemd as PID 1, a unit started inside runs and
 * logs to the container's journal, files copied in are seen inside, and
 * stopping leaves no process of the container and no folder behind.
 */
import { existsSync } from 'node:fs';
import t from 'tap';
import { processAlive } from '../support/child.js';
import { bootContainer, nspawnSkipReason } from '../support/nspawn.js';
import { debianRootfs } from '../support/tools.js';

t.setTimeout(300_000);

const skip = await nspawnSkipReason();
if (skip !== undefined) process.stderr.write(`# skipping container tests: ${skip}\n`);

t.test('a bookworm container boots, runs a unit, and is gone after stop', { skip: skip ?? false }, async (t) => {
  const { path: rootfs } = await debianRootfs();
  const ct = await bootContainer(t, rootfs);

  const state = await ct.exec('systemctl', ['is-system-running']);
  t.equal(
    state.stdout.trim(),
    'running',
    `systemd inside is running (failed units: ${(await ct.exec('systemctl', ['--failed', '--no-legend'])).stdout})`,
  );
  t.equal((await ct.execChecked('cat', ['/proc/1/comm'])).stdout.trim(), 'systemd', 'PID 1 inside is systemd');
  const links = (await ct.execChecked('ip', ['-o', 'link'])).stdout.trim().split('\n');
  t.same(
    links.map((l) => l.split(':')[1]?.trim()),
    ['lo'],
    'the private network has only lo',
  );

  await ct.writeFile('/usr/local/bin/hello', '#!/bin/sh\necho "hello from uid $(id -u) $1"\n', 0o755);
  await ct.writeFile(
    '/etc/systemd/system/hello.service',
    '[Service]\nType=oneshot\nDynamicUser=yes\nExecStart=/usr/local/bin/hello unit\n',
  );
  await ct.execChecked('systemctl', ['daemon-reload']);
  await ct.execChecked('systemctl', ['start', 'hello.service']);
  const journal = await ct.execChecked('journalctl', ['-u', 'hello.service', '-o', 'cat', '--no-pager']);
  t.match(journal.stdout, /hello from uid [1-9]\d* unit/, "the unit's output is in the container's journal");
  t.match((await ct.sh('echo "$0" | tr a-z A-Z', { env: {} })).stdout, /BASH/, 'sh runs a script inside');

  const root = ct.root;
  const leader = ct.leader;
  await ct.stop();
  t.notOk(processAlive(leader), "the container's systemd is gone");
  t.notOk(existsSync(root), 'the container folder is removed');
});
