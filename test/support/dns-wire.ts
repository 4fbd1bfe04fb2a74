/**
 * DNS for tests: build A/AAAA queries and answers, ask a server over UDP or
 * TCP, and run a fake resolver on loopback that answers from a table (or
 * holds, or fails, as a test says) and records what it was asked.
 */
import dgram from 'node:dgram';
import net from 'node:net';

export const TYPE_A = 1;

export function encodeName(name: string): Buffer {
  const parts = name
    .replace(/\.$/, '')
    .split('.')
    .filter((p) => p !== '');
  return Buffer.concat([...parts.map((p) => Buffer.concat([Buffer.from([p.length]), Buffer.from(p, 'latin1')])), Buffer.from([0])]);
}

/** A recursive query for one name (type A unless said). */
export function buildQuery(name: string, id: number, qtype = TYPE_A): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(0x0100, 2); // RD
  header.writeUInt16BE(1, 4);
  const tail = Buffer.alloc(4);
  tail.writeUInt16BE(qtype, 0);
  tail.writeUInt16BE(1, 2);
  return Buffer.concat([header, encodeName(name), tail]);
}

/** The answer to a query: one A record with the address, or the rcode alone. */
export function buildAnswer(query: Buffer, reply: { address?: string; rcode?: number }): Buffer {
  const questionEnd = questionEndOf(query);
  const header = Buffer.alloc(12);
  query.copy(header, 0, 0, 4);
  header.writeUInt16BE(0x8000 | 0x0080 | (query.readUInt16BE(2) & 0x0100) | (reply.rcode ?? 0), 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(reply.address === undefined ? 0 : 1, 6);
  const parts = [header, query.subarray(12, questionEnd)];
  if (reply.address !== undefined) {
    const rr = Buffer.alloc(16);
    rr.writeUInt16BE(0xc00c, 0); // the question's name
    rr.writeUInt16BE(TYPE_A, 2);
    rr.writeUInt16BE(1, 4);
    rr.writeUInt32BE(30, 6);
    rr.writeUInt16BE(4, 10);
    for (const [i, octet] of reply.address.split('.').entries()) rr.writeUInt8(Number(octet), 12 + i);
    parts.push(rr);
  }
  return Buffer.concat(parts);
}

/** The offset after the name at `at` (labels, ending in a zero byte or a compression pointer). */
function skipName(message: Buffer, at: number): number {
  for (;;) {
    const length = message[at] ?? 0;
    if (length >= 0xc0) return at + 2;
    if (length === 0) return at + 1;
    at += 1 + length;
  }
}

export function qtypeOf(message: Buffer): number {
  return message.readUInt16BE(skipName(message, 12));
}

function questionEndOf(message: Buffer): number {
  return skipName(message, 12) + 4;
}

/** What a test reads from an answer: id, rcode, the question name, and the A addresses. */
export interface DecodedAnswer {
  id: number;
  rcode: number;
  name: string;
  addresses: string[];
}

export function decodeAnswer(message: Buffer): DecodedAnswer {
  const id = message.readUInt16BE(0);
  const rcode = message.readUInt16BE(2) & 0x0f;
  const labels: string[] = [];
  let at = 12;
  if (message.readUInt16BE(4) > 0) {
    while ((message[at] as number) !== 0) {
      const length = message[at] as number;
      labels.push(message.toString('latin1', at + 1, at + 1 + length));
      at += 1 + length;
    }
    at += 5;
  }
  const addresses: string[] = [];
  for (let n = message.readUInt16BE(6); n > 0; n--) {
    at = skipName(message, at);
    const type = message.readUInt16BE(at);
    const rdlength = message.readUInt16BE(at + 8);
    if (type === TYPE_A) addresses.push([...message.subarray(at + 10, at + 14)].join('.'));
    at += 10 + rdlength;
  }
  return { id, rcode, name: labels.join('.'), addresses };
}

/** Sends one datagram from a fresh socket and resolves with the first datagram back. */
export function udpAsk(port: number, message: Buffer, host = '127.0.0.1'): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
    const timer = setTimeout(() => {
      socket.close();
      reject(new Error(`no UDP answer from ${host}:${port} within 10 s`));
    }, 10_000);
    socket.once('message', (answer) => {
      clearTimeout(timer);
      socket.close();
      resolve(answer);
    });
    socket.send(message, port, host);
  });
}

/** Writes the chunks on one TCP connection and resolves with `count` length-prefixed answers. */
export function tcpAsk(port: number, chunks: readonly Buffer[], count: number): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    const answers: Buffer[] = [];
    let buffered = Buffer.alloc(0);
    socket.on('error', reject);
    socket.on('data', (chunk) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
        answers.push(buffered.subarray(2, 2 + buffered.readUInt16BE(0)));
        buffered = buffered.subarray(2 + buffered.readUInt16BE(0));
      }
      if (answers.length >= count) {
        socket.end();
        resolve(answers);
      }
    });
    socket.on('connect', () => {
      for (const chunk of chunks) socket.write(chunk);
    });
  });
}

export function lengthPrefixed(message: Buffer): Buffer {
  const prefix = Buffer.alloc(2);
  prefix.writeUInt16BE(message.length, 0);
  return Buffer.concat([prefix, message]);
}

/** How a fake resolver treats a name: an address, an rcode, or silence (held until release()). */
export type FakeReply = { address: string } | { rcode: number } | 'hold';

export interface FakeResolver {
  readonly port: number;
  /** Every query received, in order (wire ID as received). */
  readonly received: Array<{ id: number; name: string; from: number }>;
  /** Answers the held queries now, in reverse order of arrival, each with the address given. */
  release(address: (name: string) => string): void;
  close(): Promise<void>;
}

/** A UDP resolver on host:port (default a free one) answering from `table` (lower-case names; unknown names get NXDOMAIN). */
export function startFakeResolver(
  table: Record<string, FakeReply>,
  host = '127.0.0.1',
  port = 0,
  onQuery?: (query: FakeResolver['received'][number]) => void,
): Promise<FakeResolver> {
  const socket = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
  const received: FakeResolver['received'] = [];
  const held: Array<{ query: Buffer; name: string; port: number; address: string }> = [];
  socket.on('message', (query, rinfo) => {
    const name = decodeAnswer(query).name.toLowerCase();
    const entry = { id: query.readUInt16BE(0), name, from: rinfo.port };
    received.push(entry);
    onQuery?.(entry);
    const known = table[name] ?? { rcode: 3 };
    // Names have A records only: another type gets NOERROR with no answer.
    const reply = known !== 'hold' && 'address' in known && qtypeOf(query) !== TYPE_A ? { rcode: 0 } : known;
    if (reply === 'hold') held.push({ query, name, port: rinfo.port, address: rinfo.address });
    else socket.send(buildAnswer(query, reply), rinfo.port, rinfo.address);
  });
  return new Promise((resolve) => {
    socket.bind(port, host, () =>
      resolve({
        port: socket.address().port,
        received,
        release: (address) => {
          for (const q of held.splice(0).reverse()) socket.send(buildAnswer(q.query, { address: address(q.name) }), q.port, q.address);
        },
        close: () => new Promise<void>((done) => socket.close(() => done())),
      }),
    );
  });
}
