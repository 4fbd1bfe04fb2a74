/**
 * The systemd notification protocol (sd_notify), for units of Type=notify:
 * READY=1 once the service really serves, RELOADING=1 then READY=1 around a
 * reload, STOPPING=1, and STATUS= lines that `systemctl status` shows.
 *
 * The protocol is one datagram on the AF_UNIX socket named by $NOTIFY_SOCKET,
 * and Node has no Unix datagram sockets. So each message is sent by spawning
 * systemd-notify (shipped with systemd itself, always there when systemd
 * runs the unit); it waits until the manager has processed the message (its
 * default barrier, systemd 246 and newer), so it is not lost when the short
 * process exits. The sender is a child, not the main process: the unit says
 * NotifyAccess=all. Without $NOTIFY_SOCKET (not under systemd, or a unit of
 * another type) nothing is sent. Messages are sent in order, one at a time;
 * a failed send is logged, never thrown: the service goes on either way.
 */
import { execFile } from 'node:child_process';
import type { Logger } from './logger.js';

export interface ServiceNotifier {
  /** READY=1: the service serves; status is shown by `systemctl status`. */
  ready(status: string): Promise<void>;
  /** RELOADING=1: a reload began (ready() ends it). */
  reloading(status: string): Promise<void>;
  /** STOPPING=1: the service is stopping. */
  stopping(status: string): Promise<void>;
  /** STATUS= only. */
  status(text: string): Promise<void>;
}

/** Runs `systemd-notify ARGS...` with NOTIFY_SOCKET=socket; resolves when it exited (rejects on failure). */
export type NotifyExec = (args: readonly string[], socket: string) => Promise<void>;

const realExec: NotifyExec = (args, socket) =>
  new Promise((resolve, reject) => {
    const env = { ...process.env, NOTIFY_SOCKET: socket };
    execFile('systemd-notify', [...args], { timeout: 10_000, env }, (err, _stdout, stderr) =>
      err ? reject(new Error(`systemd-notify ${args.join(' ')}: ${stderr.trim() || err.message}`)) : resolve(),
    );
  });

/** A status line systemd accepts: one line, bounded. */
const statusArg = (text: string) => `STATUS=${text.replace(/\s+/g, ' ').slice(0, 200)}`;

/**
 * The notifier for this process: systemd-notify when `notifySocket`
 * ($NOTIFY_SOCKET, read by the caller at startup) is set, else one that sends nothing.
 */
export function serviceNotifier(options: { notifySocket: string | undefined; log: Logger; exec?: NotifyExec }): ServiceNotifier {
  const { log } = options;
  const exec = options.exec ?? realExec;
  const socket = options.notifySocket;
  if (socket === undefined || socket === '') return silentNotifier;
  let queue: Promise<void> = Promise.resolve();
  const send = (args: string[]) => {
    queue = queue.then(() =>
      exec(args, socket).catch((err: unknown) => log.warn('cannot notify systemd', { message: args.join(' '), error: err })),
    );
    return queue;
  };
  return {
    ready: (status) => send(['READY=1', statusArg(status)]),
    reloading: (status) => send(['RELOADING=1', statusArg(status)]),
    stopping: (status) => send(['STOPPING=1', statusArg(status)]),
    status: (text) => send([statusArg(text)]),
  };
}

/** Sends nothing (not run by systemd). */
export const silentNotifier: ServiceNotifier = {
  ready: async () => {},
  reloading: async () => {},
  stopping: async () => {},
  status: async () => {},
};
