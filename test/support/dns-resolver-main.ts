/**
 * `node dist/test/support/dns-resolver-main.js ADDRESS PORT NAME=IPV4...`: a
 * fake DNS resolver (UDP) as its own process, for a host in a network
 * namespace. Answers the names given with their address, NXDOMAIN otherwise.
 * Prints `listening ADDRESS PORT` once bound, then `query NAME SOURCEPORT` for
 * each query it gets; stops on SIGTERM.
 */
import { startFakeResolver } from './dns-wire.js';

const [address, portText, ...entries] = process.argv.slice(2);
const port = Number(portText);
if (address === undefined || !Number.isInteger(port) || port <= 0) {
  process.stderr.write('usage: dns-resolver-main.js ADDRESS PORT NAME=IPV4...\n');
  process.exit(2);
}
const table = Object.fromEntries(entries.map((entry) => entry.split('=')).map(([name, ip]) => [name as string, { address: ip as string }]));
const resolver = await startFakeResolver(table, address, port, (query) => process.stdout.write(`query ${query.name} ${query.from}\n`));
process.stdout.write(`listening ${address} ${resolver.port}\n`);
process.once('SIGTERM', () => {
  void resolver.close().then(() => process.exit(0));
});
