/**
 * `mesh-controlplane run` under systemd: READY=1 (the unit is Type=notify)
 * only once the Identity API listens and the admin socket exists, with the
 * address in STATUS=; STOPPING=1 on SIGTERM. The shared fake notifier
 * records the messages; signals come from an emitter.
 */
import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import t from 'tap';
import { runCommand } from '../../../controlplane/commands/run-command.js';
import { FakeNotifier } from '../../fakes/notifier.js';
import { captureIo } from '../../support/cli.js';
import { tempDir } from '../../support/temp-dir.js';

t.setTimeout(60_000);

t.test('READY=1 once listening, STOPPING=1 on SIGTERM', async (t) => {
  const dir = await tempDir(t, 'cp-notify-');
  const notifier = new FakeNotifier();
  const signals = new EventEmitter();
  const io = captureIo();
  const done = runCommand({ signals, notifier: () => notifier }).run({
    values: { 'data-dir': dir, listen: '127.0.0.1:0', 'trust-domain': 'example.org' },
    positionals: [],
    io: io.io,
  });
  const ready = await Promise.race([notifier.next(/^READY=1/), done.then((code) => `exited ${code}: ${io.err()}`)]);
  const match = /^READY=1 STATUS=listening on 127\.0\.0\.1:(\d+), trust domain example\.org$/.exec(ready);
  t.ok(match, `the status line names the address: ${ready}`);
  const port = Number(match?.[1]);
  await new Promise<void>((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.destroy();
      resolve();
    });
    socket.once('error', reject);
  });
  t.pass('the Identity API accepts connections when READY=1 is sent');
  t.ok(existsSync(path.join(dir, 'admin.sock')), 'the admin socket exists when READY=1 is sent');
  signals.emit('SIGTERM');
  t.equal(await done, 0);
  t.match(notifier.messages.at(-1), /^STOPPING=1/);
});
