/**
 * A stand-in for systemd's notify socket: a Python receiver (Node has no Unix
 * datagram sockets) binds a socket, prints each datagram as one line
 * ("READY=1 | STATUS=..."), and closes the barrier descriptor that
 * systemd-notify passes and waits on, as PID 1 does. Stopped when the test ends.
 */
import { execFile, spawn } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import type { Test } from 'tap';
import { tempDir } from './temp-dir.js';

const RECEIVER = `
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("listening", flush=True)
while True:
    data, anc, _, _ = s.recvmsg(4096, socket.CMSG_SPACE(16 * 4))
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            for i in range(0, len(payload) - len(payload) % 4, 4):
                os.close(int.from_bytes(payload[i:i + 4], sys.byteorder))
    print(data.decode().replace("\\n", " | "), flush=True)
`;

/** Why the receiver cannot run here (no systemd-notify or python3), or undefined. */
export async function notifySkipReason(): Promise<string | undefined> {
  for (const [tool, arg] of [
    ['systemd-notify', '--help'],
    ['python3', '--version'],
  ] as const) {
    try {
      await promisify(execFile)(tool, [arg]);
    } catch (err) {
      return `${tool} is not usable here (${(err as Error).message})`;
    }
  }
  return undefined;
}

export interface NotifyReceiver {
  /** The socket path: NOTIFY_SOCKET for the process under test. */
  readonly socket: string;
  /** Every datagram so far, in order (BARRIER=1 lines included). */
  readonly lines: readonly string[];
  /** Resolves with the first line at or after index `from` that matches (already received or still to come). */
  next(match: RegExp, from?: number): Promise<string>;
}

export async function startNotifyReceiver(t: Pick<Test, 'teardown'>): Promise<NotifyReceiver> {
  const dir = await tempDir(t, 'sdn-');
  const socket = path.join(dir, 'notify');
  const child = spawn('python3', ['-c', RECEIVER, socket], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => {
    child.kill();
  });
  const lines: string[] = [];
  let waiters: Array<() => void> = [];
  createInterface({ input: child.stdout }).on('line', (line) => {
    lines.push(line);
    const now = waiters;
    waiters = [];
    for (const w of now) w();
  });
  const next = (match: RegExp, from = 0) =>
    new Promise<string>((resolve) => {
      const check = () => {
        const found = lines.slice(from).find((l) => match.test(l));
        if (found !== undefined) resolve(found);
        else waiters.push(check);
      };
      check();
    });
  await next(/^listening$/);
  lines.shift();
  return { socket, lines, next };
}
