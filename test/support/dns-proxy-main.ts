/**
 * `node dist/test/support/dns-proxy-main.js PORT CONSUL_HOST:PORT DOMAIN`: the
 * agent's split DNS proxy as its own process, for a host in a network
 * namespace (it reads that namespace's /etc/resolv.conf, which `ip netns
 * exec` bind-mounts from /etc/netns/<ns>/resolv.conf). Prints `listening
 * {status}` once it answers, and `stats {stats}` when it stops on SIGTERM.
 */
import { startDnsProxy } from '../../agent/tproxy/dns-proxy.js';
import { systemClock } from '../../lib/clock.js';
import { createLogger } from '../../lib/logger.js';

const [portText, consulAddress, domain] = process.argv.slice(2);
const listenPort = Number(portText);
if (!Number.isInteger(listenPort) || consulAddress === undefined || domain === undefined) {
  process.stderr.write('usage: dns-proxy-main.js PORT CONSUL_HOST:PORT DOMAIN\n');
  process.exit(2);
}
const log = createLogger({ level: 'debug', sink: { write: (line) => process.stderr.write(`${line}\n`) } });
const proxy = await startDnsProxy({ listenPort, consulAddress, domain, clock: systemClock, log });
process.stdout.write(`listening ${JSON.stringify(proxy.status())}\n`);
process.once('SIGTERM', () => {
  const stats = proxy.stats();
  void proxy.close().then(() => {
    process.stdout.write(`stats ${JSON.stringify(stats)}\n`);
    process.exit(0);
  });
});
