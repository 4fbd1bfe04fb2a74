/**
 * The DNS proxy's side towards the resolvers: one UDP socket per address
 * family, bound to the fixed source port the capture rules exempt (so the
 * proxy's own queries are never captured back to itself). Every query sent
 * gets a fresh transaction ID that is unused on its socket, so concurrent
 * clients that picked the same ID never collide; an answer is taken only from
 * the server it was sent to, with the same question. An exchange ends with the
 * answer, or a timeout on the injected clock, or a send error.
 */
import { randomInt } from 'node:crypto';
import dgram from 'node:dgram';
import { isIPv6 } from 'node:net';
import type { Clock, TimerHandle } from '../../lib/clock.js';
import { answers, withId } from './dns-message.js';
import type { DnsServer } from './resolv-conf.js';

export type ExchangeResult =
  | { readonly kind: 'answer'; readonly message: Buffer }
  | { readonly kind: 'timeout' }
  | { readonly kind: 'error'; readonly error: Error };

interface Pending {
  readonly server: DnsServer;
  readonly query: Buffer;
  readonly questionEnd: number;
  readonly timer: TimerHandle;
  readonly done: (result: ExchangeResult) => void;
}

const ID_SPACE = 0x10000;

/** Drops an IPv6 zone and the IPv4-mapped prefix, so rinfo addresses compare with configured ones. */
function sameAddress(a: string, b: string): boolean {
  const norm = (x: string) =>
    x
      .replace(/%.*$/, '')
      .replace(/^::ffff:/i, '')
      .toLowerCase();
  return norm(a) === norm(b);
}

class FamilySocket {
  private readonly pending = new Map<number, Pending>();

  constructor(
    readonly socket: dgram.Socket,
    private readonly clock: Clock,
  ) {
    socket.on('message', (message, rinfo) => this.onMessage(message, rinfo));
  }

  get inFlight(): number {
    return this.pending.size;
  }

  exchange(query: Buffer, questionEnd: number, server: DnsServer, timeoutMs: number): Promise<ExchangeResult> {
    return new Promise((resolve) => {
      if (this.pending.size >= ID_SPACE) {
        resolve({ kind: 'error', error: new Error('65536 queries in flight on one socket') });
        return;
      }
      let id = randomInt(ID_SPACE);
      while (this.pending.has(id)) id = (id + 1) % ID_SPACE;
      const wire = withId(query, id);
      const finish = (result: ExchangeResult) => {
        if (this.pending.get(id)?.query !== wire) return;
        this.pending.get(id)?.timer.cancel();
        this.pending.delete(id);
        resolve(result);
      };
      const timer = this.clock.setTimer(timeoutMs, () => finish({ kind: 'timeout' }));
      this.pending.set(id, { server, query: wire, questionEnd, timer, done: finish });
      this.socket.send(wire, server.port, server.address, (err) => {
        if (err) finish({ kind: 'error', error: err });
      });
    });
  }

  private onMessage(message: Buffer, rinfo: dgram.RemoteInfo): void {
    if (message.length < 2) return;
    const entry = this.pending.get(message.readUInt16BE(0));
    if (entry === undefined) return;
    if (rinfo.port !== entry.server.port || !sameAddress(rinfo.address, entry.server.address)) return;
    if (!answers(message, entry.query, entry.questionEnd)) return;
    entry.done({ kind: 'answer', message });
  }

  close(): void {
    for (const entry of [...this.pending.values()]) entry.done({ kind: 'error', error: new Error('the DNS proxy is closing') });
    this.socket.close();
  }
}

function bind(type: 'udp4' | 'udp6', port: number): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket({ type, ipv6Only: type === 'udp6' });
    socket.once('error', reject);
    socket.bind({ port, address: type === 'udp4' ? '0.0.0.0' : '::', exclusive: true }, () => {
      socket.off('error', reject);
      resolve(socket);
    });
  });
}

export interface UpstreamSockets {
  /** The local port queries leave from (the one the capture rules exempt). */
  readonly sourcePort: number;
  exchange(query: Buffer, questionEnd: number, server: DnsServer, timeoutMs: number): Promise<ExchangeResult>;
  inFlight(): number;
  close(): void;
}

/**
 * Binds the upstream sockets on sourcePort (0: any free port, for tests). The
 * IPv6 socket is opened only when an IPv6 server is configured; on a host
 * without IPv6 its exchanges fail at once (and the next server is tried).
 */
export async function openUpstreamSockets(options: {
  sourcePort: number;
  ipv6: boolean;
  clock: Clock;
  onIpv6Unavailable?: (err: Error) => void;
}): Promise<UpstreamSockets> {
  const v4 = new FamilySocket(await bind('udp4', options.sourcePort), options.clock);
  const sourcePort = v4.socket.address().port;
  let v6: FamilySocket | undefined;
  let v6Error: Error | undefined;
  if (options.ipv6) {
    try {
      v6 = new FamilySocket(await bind('udp6', sourcePort), options.clock);
    } catch (err) {
      v6Error = err as Error;
      options.onIpv6Unavailable?.(v6Error);
    }
  }
  for (const family of [v4, v6]) family?.socket.on('error', () => {});
  return {
    sourcePort,
    exchange: (query, questionEnd, server, timeoutMs) => {
      if (!isIPv6(server.address.replace(/%.*$/, ''))) return v4.exchange(query, questionEnd, server, timeoutMs);
      if (v6 !== undefined) return v6.exchange(query, questionEnd, server, timeoutMs);
      return Promise.resolve({ kind: 'error', error: v6Error ?? new Error('no IPv6 upstream socket') });
    },
    inFlight: () => v4.inFlight + (v6?.inFlight ?? 0),
    close: () => {
      v4.close();
      v6?.close();
    },
  };
}
