/**
 * Free TCP ports on loopback, for the demo, the benchmarks and the tests, which pick their listen ports before the
 * processes that listen on them start.
 *
 * A port the kernel hands out for bind(0) comes from the ephemeral range (net.ipv4.ip_local_port_range), the
 * same range every outgoing connection takes its local port from. So between the pick and the listen, any
 * connection on the host (another test's Consul client, an Envoy's upstream) could take it: CI35 failed on
 * EADDRINUSE that way. The ports picked here lie below that range, where nothing takes a port unasked; each is
 * checked free by binding it, at a random place so that processes picking at the same time rarely meet.
 */
import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';

/** A tuple of N numbers, so `const [a, b] = await freePorts(2)` needs no cast. */
export type Ports<N extends number, T extends number[] = []> = number extends N
  ? number[]
  : T['length'] extends N
    ? T
    : Ports<N, [...T, number]>;

/** Where free ports are looked for: from `low` to `high`, both included. */
export interface PortPool {
  readonly low: number;
  readonly high: number;
}

/** The lowest port picked: above the well-known and most registered service ports. */
export const POOL_LOW = 10_000;
/** The smallest pool worth searching; with less room below the ephemeral range, the kernel picks (bind(0)). */
const MIN_POOL = 1_000;

/** The kernel's ephemeral range, from `text` as /proc/sys/net/ipv4/ip_local_port_range gives it. */
export function parsePortRange(text: string): { low: number; high: number } | undefined {
  const m = /^\s*(\d+)\s+(\d+)\s*$/.exec(text);
  if (m === null) return undefined;
  const low = Number(m[1]);
  const high = Number(m[2]);
  return low >= 1 && low <= high && high <= 65_535 ? { low, high } : undefined;
}

/** The pool below an ephemeral range that starts at `ephemeralLow`, or undefined when there is too little room. */
export function poolBelow(ephemeralLow: number): PortPool | undefined {
  const high = ephemeralLow - 1;
  return high - POOL_LOW + 1 >= MIN_POOL ? { low: POOL_LOW, high } : undefined;
}

function hostPool(): PortPool | undefined {
  let text: string;
  try {
    text = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8');
  } catch {
    return undefined;
  }
  const range = parsePortRange(text);
  return range === undefined ? undefined : poolBelow(range.low);
}

/** Listens on port (0: the kernel picks); resolves with the server, or undefined when the port is in use. */
function tryListen(port: number, host: string): Promise<net.Server | undefined> {
  const server = net.createServer();
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE' || err.code === 'EACCES') resolve(undefined);
      else reject(err);
    });
    server.listen({ port, host, exclusive: true }, () => resolve(server));
  });
}

export interface FreePortsOptions {
  /** Where to look; default: below this host's ephemeral range. */
  pool?: PortPool;
  /** A random integer in [0, n); default crypto.randomInt. */
  random?: (n: number) => number;
}

/**
 * Returns n distinct free ports on host; all are held open until every one is found. They come from the pool,
 * from a random place in it onwards; where the pool is too small or full, the kernel picks them.
 */
export async function freePorts<N extends number>(n: N, host = '127.0.0.1', options: FreePortsOptions = {}): Promise<Ports<N>> {
  const pool = options.pool ?? hostPool();
  const random = options.random ?? randomInt;
  const servers: net.Server[] = [];
  try {
    const ports: number[] = [];
    const size = pool === undefined ? 0 : pool.high - pool.low + 1;
    let offset = size > 0 ? random(size) : 0;
    let tried = 0;
    while (ports.length < n) {
      let server: net.Server | undefined;
      if (pool !== undefined && tried < size) {
        server = await tryListen(pool.low + offset, host);
        offset = (offset + 1) % size;
        tried++;
      } else {
        server = await tryListen(0, host);
        if (server === undefined) throw new Error(`no free port on ${host}`);
      }
      if (server === undefined) continue;
      servers.push(server);
      ports.push((server.address() as net.AddressInfo).port);
    }
    return ports as Ports<N>;
  } finally {
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  }
}

export async function freePort(host = '127.0.0.1'): Promise<number> {
  const [port] = await freePorts(1, host);
  return port as number;
}
