/**
 * The real systemd-notify delivers what the agent's notifier sends, to a
 * stand-in notify socket (test/support/notify-receiver.ts): READY=1 with
 * STATUS=, each followed by the barrier systemd-notify waits on, so a send
 * returns only after the receiver processed it. Skipped, with the reason,
 * without systemd-notify or python3.
 */
import t from 'tap';
import { createLogger } from '../../lib/logger.js';
import { serviceNotifier } from '../../lib/sd-notify.js';
import { notifySkipReason, startNotifyReceiver } from '../support/notify-receiver.js';

const skip = await notifySkipReason();

t.test('systemd-notify carries READY=1 and STATUS= to the notify socket', { skip: skip ?? false }, async (t) => {
  const receiver = await startNotifyReceiver(t);
  const warnings: string[] = [];
  const log = createLogger({ format: 'json', sink: { write: (l) => warnings.push(l) } });
  const notifier = serviceNotifier({ notifySocket: receiver.socket, log });
  await notifier.ready('serving 2 workload(s)');
  await notifier.reloading('reloading the configuration');
  await receiver.next(/^BARRIER=1$/, 3);
  t.same(warnings, [], 'no send failed');
  t.same(
    receiver.lines,
    ['READY=1 | STATUS=serving 2 workload(s)', 'BARRIER=1', 'RELOADING=1 | STATUS=reloading the configuration', 'BARRIER=1'],
    'each message, then the barrier systemd-notify waits on before it exits',
  );
});
