/**
 * `node dist/test/support/tcp-unix-bridge-main.js HOST PORT SOCKET`: accepts
 * TCP on HOST:PORT and pipes each connection to the Unix socket SOCKET. Run
 * inside a network namespace host (test/support/netns.ts), it makes a service
 * of the root namespace's loopback (the API server of startLocalKube) reachable
 * on the same loopback address and port inside the namespace: Unix socket paths
 * are shared by every network namespace (kube-bridge.ts serves the socket).
 * Bytes pass through untouched (TLS ends at the API server). Prints
 * `listening HOST:PORT` once it accepts; stops on SIGTERM.
 */
import net from 'node:net';

const [host, portText, socket] = process.argv.slice(2);
const port = Number(portText);
if (host === undefined || socket === undefined || !Number.isInteger(port) || port <= 0) {
  process.stderr.write('usage: tcp-unix-bridge-main.js HOST PORT SOCKET\n');
  process.exit(2);
}
const server = net.createServer((client) => {
  const upstream = net.connect(socket);
  client.pipe(upstream).pipe(client);
  const close = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', close);
  upstream.on('error', close);
});
server.listen(port, host, () => process.stdout.write(`listening ${host}:${port}\n`));
process.once('SIGTERM', () => {
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1_000).unref();
});
