/**
 * DNS over TCP for the proxy (RFC 1035 §4.2.2, RFC 7766): each message has a
 * two-byte length prefix; a client may send several queries on one connection
 * and get the answers in any order. Each query is resolved like a UDP one
 * (forwarded over UDP) and answered with the prefix. A connection idle for
 * IDLE_MS of the injected clock is closed, and so is one that sends an empty
 * message (there is nothing to answer it with).
 */
import net from 'node:net';
import type { Clock, TimerHandle } from '../../lib/clock.js';

export const TCP_IDLE_MS = 10_000;

export interface TcpDns {
  readonly server: net.Server;
  /** Ends every open connection (on close: server.close() waits for them). */
  closeConnections(): void;
}

export function serveTcp(resolve: (query: Buffer) => Promise<Buffer | undefined>, clock: Clock): TcpDns {
  const connections = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    connections.add(socket);
    let buffered = Buffer.alloc(0);
    let pending = 0;
    let idle: TimerHandle | undefined;
    const armIdle = () => {
      idle?.cancel();
      idle = pending === 0 ? clock.setTimer(TCP_IDLE_MS, () => socket.destroy()) : undefined;
    };
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2) {
        const length = buffered.readUInt16BE(0);
        if (length === 0) {
          socket.destroy();
          return;
        }
        if (buffered.length < 2 + length) break;
        const query = buffered.subarray(2, 2 + length);
        buffered = buffered.subarray(2 + length);
        pending += 1;
        void resolve(query).then((answer) => {
          pending -= 1;
          if (answer !== undefined && !socket.destroyed) {
            const prefix = Buffer.alloc(2);
            prefix.writeUInt16BE(answer.length, 0);
            socket.write(Buffer.concat([prefix, answer]));
          }
          armIdle();
        });
      }
      armIdle();
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      idle?.cancel();
      connections.delete(socket);
    });
    armIdle();
  });
  return {
    server,
    closeConnections: () => {
      for (const socket of connections) socket.destroy();
    },
  };
}
