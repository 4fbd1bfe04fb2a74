/**
 * `node dist/test/support/dns-forwarder-main.js ADDRESS PORT UPSTREAM_ADDRESS
 * UPSTREAM_PORT`: a local stub resolver, like systemd-resolved at
 * 127.0.0.53, as its own process: every UDP query it gets is sent on to the
 * upstream (port 53 there) from a fresh socket, and the answer relayed back.
 * Prints `listening ADDRESS PORT` once bound; stops on SIGTERM.
 */
import dgram from 'node:dgram';

const [address, portText, upstream, upstreamPortText] = process.argv.slice(2);
const port = Number(portText);
const upstreamPort = Number(upstreamPortText);
if (address === undefined || upstream === undefined || !Number.isInteger(port) || !Number.isInteger(upstreamPort)) {
  process.stderr.write('usage: dns-forwarder-main.js ADDRESS PORT UPSTREAM_ADDRESS UPSTREAM_PORT\n');
  process.exit(2);
}
const server = dgram.createSocket('udp4');
server.on('message', (query, client) => {
  const out = dgram.createSocket('udp4');
  const timer = setTimeout(() => out.close(), 5_000);
  out.once('message', (answer) => {
    clearTimeout(timer);
    out.close();
    server.send(answer, client.port, client.address);
  });
  out.send(query, upstreamPort, upstream);
});
server.bind(port, address, () => process.stdout.write(`listening ${address} ${port}\n`));
process.once('SIGTERM', () => server.close(() => process.exit(0)));
