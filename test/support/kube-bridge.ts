/**
 * The API server of startLocalKube listens on the root namespace's loopback;
 * a control plane inside a network-namespace host (netns.ts) reaches it at the
 * same https://127.0.0.1:PORT (the serving certificate's SAN) through a bridge:
 * a Unix socket served here, in the root namespace, that connects to the API
 * server, and tcp-unix-bridge-main.js inside the host, listening on the host's
 * own 127.0.0.1:PORT. No address of the root namespace is exposed to any
 * network: the socket is a file in the caller's folder.
 */
import { rm } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { repoRoot } from '../../scripts/repo-root.js';
import type { ManagedChild } from './child.js';
import type { TestHost } from './netns.js';
import { waitFor } from './wait.js';

export interface KubeBridge {
  /** The host-side process (record it with the caller's keeper to stop it in order). */
  readonly child: ManagedChild;
  /** Stops the host side and the socket server, removes the socket. */
  close(): Promise<void>;
}

/** Makes 127.0.0.1:port of the root namespace reachable as 127.0.0.1:port inside host; the socket file lives in dir. */
export async function bridgeLoopbackInto(host: TestHost, port: number, dir: string): Promise<KubeBridge> {
  const socket = path.join(dir, `bridge-${host.name}-${port}.sock`);
  await rm(socket, { force: true });
  const connections = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(port, '127.0.0.1');
    connections.add(client).add(upstream);
    client.pipe(upstream).pipe(client);
    const close = () => {
      client.destroy();
      upstream.destroy();
      connections.delete(client);
      connections.delete(upstream);
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(socket, resolve));
  const closeServer = async () => {
    for (const c of connections) c.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await rm(socket, { force: true });
  };
  const main = path.join(repoRoot(), 'dist', 'test', 'support', 'tcp-unix-bridge-main.js');
  const child = host.spawn(process.execPath, [main, '127.0.0.1', String(port), socket]);
  try {
    await waitFor(
      async () => {
        if (child.exited()) throw new Error(`the bridge in ${host.name} exited: ${child.output()}`);
        return child.output().includes('listening') ? true : undefined;
      },
      { timeoutMs: 15_000, what: `the bridge to 127.0.0.1:${port} in ${host.name}` },
    );
  } catch (err) {
    await child.stop(1_000);
    await closeServer();
    throw err;
  }
  return {
    child,
    async close() {
      await child.stop(2_000);
      await closeServer();
    },
  };
}
