/**
 * The real systemd-notify delivers what the agent's notifier sends: a
 * receiver in Python (Node has no Unix datagram sockets) binds a notify
 * socket, prints each datagram and closes the barrier descriptor that
 * systemd-notify passes and waits on, as PID 1 does. Proves the messages'
 * form (READY=1 with STATUS=) and that each send returns only after the
 * receiver processed it. Skipped, with the reason, without systemd-notify or python3.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import t from 'tap';
import { createLogger } from '../../lib/logger.js';
import { serviceNotifier } from '../../lib/sd-notify.js';
import { tempDir } from '../support/temp-dir.js';

const RECEIVER = `
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
print("listening", flush=True)
while True:
    data, anc, _, _ = s.recvmsg(4096, socket.CMSG_SPACE(16 * 4) + socket.CMSG_SPACE(12))
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            for i in range(0, len(payload) - len(payload) % 4, 4):
                os.close(int.from_bytes(payload[i:i + 4], sys.byteorder))
    print(data.decode().replace("\\n", " | "), flush=True)
`;

async function skipReason(): Promise<string | undefined> {
  for (const tool of [
    ['systemd-notify', '--help'],
    ['python3', '--version'],
  ] as const) {
    try {
      await promisify(execFile)(tool[0], [tool[1]]);
    } catch (err) {
      return `${tool[0]} is not usable here (${(err as Error).message})`;
    }
  }
  return undefined;
}
const skip = await skipReason();

t.test('systemd-notify carries READY=1 and STATUS= to the notify socket', { skip: skip ?? false }, async (t) => {
  const dir = await tempDir(t, 'sdn-');
  const socket = path.join(dir, 'notify');
  const receiver: ChildProcess = spawn('python3', ['-c', RECEIVER, socket], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => receiver.kill());
  const lines: string[] = [];
  const waiting: Array<() => void> = [];
  createInterface({ input: receiver.stdout as NodeJS.ReadableStream }).on('line', (line) => {
    lines.push(line);
    for (const w of waiting.splice(0)) w();
  });
  const lineCount = (n: number) =>
    new Promise<void>((resolve) => {
      const check = () => (lines.length >= n ? resolve() : waiting.push(check));
      check();
    });
  await lineCount(1);
  t.equal(lines[0], 'listening');

  const warnings: string[] = [];
  const log = createLogger({ format: 'json', sink: { write: (l) => warnings.push(l) } });
  const notifier = serviceNotifier({ notifySocket: socket, log });
  await notifier.ready('serving 2 workload(s)');
  await notifier.reloading('reloading the configuration');
  await lineCount(5);
  t.same(warnings, [], 'no send failed');
  t.same(
    lines.slice(1),
    ['READY=1 | STATUS=serving 2 workload(s)', 'BARRIER=1', 'RELOADING=1 | STATUS=reloading the configuration', 'BARRIER=1'],
    'each message, then the barrier systemd-notify waits on before it exits',
  );
});
