/** Free TCP ports on loopback, found by binding port 0. */
import net from 'node:net';

/** A tuple of N numbers, so `const [a, b] = await freePorts(2)` needs no cast. */
export type Ports<N extends number, T extends number[] = []> = number extends N
  ? number[]
  : T['length'] extends N
    ? T
    : Ports<N, [...T, number]>;

/** Returns n distinct free ports; all are held open until every one is found. */
export async function freePorts<N extends number>(n: N, host = '127.0.0.1'): Promise<Ports<N>> {
  const servers: net.Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < n; i++) {
      const server = net.createServer();
      servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, host, () => resolve());
      });
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
