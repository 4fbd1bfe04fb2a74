/**
 * The split DNS proxy against the real Consul's DNS interface: a service
 * registered in Consul resolves as <svc>.service.consul through the proxy
 * (UDP and TCP), an unknown one gets Consul's NXDOMAIN, and a name outside the
 * Consul domain goes to the host resolver (a fake one here), never to Consul.
 */
import t from 'tap';
import { RCODE } from '../../agent/tproxy/dns-message.js';
import { startDnsProxy } from '../../agent/tproxy/dns-proxy.js';
import { systemClock } from '../../lib/clock.js';
import { createLogger } from '../../lib/logger.js';
import { startConsulDev } from '../support/consul.js';
import { buildQuery, decodeAnswer, lengthPrefixed, startFakeResolver, tcpAsk, udpAsk } from '../support/dns-wire.js';
import { freePorts } from '../support/ports.js';
import { waitFor } from '../support/wait.js';

t.test('<svc>.service.consul resolves through the proxy from the real Consul', { timeout: 120_000 }, async (t) => {
  const [http, grpc, serfLan, serfWan, server, dns] = await freePorts(6);
  const ports = { http, grpc, serfLan, serfWan, server };
  const consul = await startConsulDev({
    ports,
    extraConfig: { ports: { http, grpc, grpc_tls: -1, dns, serf_lan: serfLan, serf_wan: serfWan, server } },
  });
  t.teardown(() => consul.stop());
  const host = await startFakeResolver({ 'www.example.org': { address: '192.0.2.80' } });
  t.teardown(() => host.close());
  const proxy = await startDnsProxy({
    listenPort: 0,
    consulAddress: `127.0.0.1:${dns}`,
    domain: 'consul',
    upstreams: [{ address: '127.0.0.1', port: host.port }],
    clock: systemClock,
    log: createLogger({ sink: { write: () => {} } }),
  });
  t.teardown(() => proxy.close());

  const register = await fetch(`http://${consul.httpAddr}/v1/agent/service/register`, {
    method: 'PUT',
    body: JSON.stringify({ ID: 'api-1', Name: 'api', Address: '10.20.30.40', Port: 8080 }),
  });
  t.equal(register.status, 200, 'api registered in Consul');

  const port = proxy.address.port;
  const answer = await waitFor(
    async () => {
      const a = decodeAnswer(await udpAsk(port, buildQuery('api.service.consul', 501)));
      return a.addresses.length > 0 ? a : undefined;
    },
    { timeoutMs: 30_000, what: 'api.service.consul in Consul DNS' },
  );
  t.same(answer, { id: 501, rcode: RCODE.NOERROR, name: 'api.service.consul', addresses: ['10.20.30.40'] });

  const [overTcp] = await tcpAsk(port, [lengthPrefixed(buildQuery('API.Service.Consul', 502))], 1);
  t.same(decodeAnswer(overTcp as Buffer).addresses, ['10.20.30.40'], 'over TCP too (forwarded over UDP)');

  const unknown = decodeAnswer(await udpAsk(port, buildQuery('nothere.service.consul', 503)));
  t.equal(unknown.rcode, RCODE.NXDOMAIN, "Consul's own NXDOMAIN for an unknown service");

  const outside = decodeAnswer(await udpAsk(port, buildQuery('www.example.org', 504)));
  t.same(outside.addresses, ['192.0.2.80'], 'a name outside the domain goes to the host resolver');
  t.same(
    host.received.map((q) => q.name),
    ['www.example.org'],
    'the host resolver saw only the name outside the Consul domain',
  );
  t.match(proxy.stats(), { toUpstream: 1, failures: 0, timeouts: 0, malformed: 0 });
  t.ok(proxy.stats().toConsul >= 3, 'Consul names went to Consul');
});
