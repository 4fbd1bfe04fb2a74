/**
 * The Consul harness against the real Consul built from its Go module:
 * register a service through the `consul` npm client (the client the agent
 * uses) and read it back from the catalog and health APIs.
 */
import { existsSync } from 'node:fs';
import Consul from 'consul';
import t from 'tap';
import { startConsulDev } from '../support/consul.js';

t.setTimeout(180_000);

t.test('register a service through the consul client and read it back', async (t) => {
  const dev = await startConsulDev();
  t.teardown(() => dev.stop());
  const client = new Consul({ host: '127.0.0.1', port: dev.httpPort });

  await client.agent.service.register({
    name: 'web',
    id: 'web-1',
    address: '127.0.0.1',
    port: 8080,
    tags: ['v1'],
    meta: { spiffe_id: 'spiffe://example.org/ns/default/sa/web', protocol: 'http' },
    check: { name: 'web alive', ttl: '30s', status: 'passing', timeout: '5s' },
  });

  const services = (await client.catalog.service.list()) as Record<string, string[]>;
  t.same(services.web, ['v1'], 'catalog lists the service with its tags');

  const nodes = (await client.catalog.service.nodes('web')) as Array<Record<string, unknown>>;
  t.equal(nodes.length, 1);
  t.match(nodes[0], {
    Node: dev.nodeName,
    ServiceID: 'web-1',
    ServicePort: 8080,
    ServiceMeta: { spiffe_id: 'spiffe://example.org/ns/default/sa/web', protocol: 'http' },
  });

  const healthy = (await client.health.service({ service: 'web', passing: true })) as Array<{
    Service: { ID: string };
    Checks: Array<{ Name: string; Status: string }>;
  }>;
  t.equal(healthy.length, 1, 'the passing instance is healthy');
  t.equal(healthy[0]?.Service.ID, 'web-1');
  t.ok(healthy[0]?.Checks.some((c) => c.Name === 'web alive' && c.Status === 'passing'));

  // A raw API read through the harness agrees with the client.
  const raw = await dev.api<Record<string, unknown>>('/v1/agent/services');
  t.ok('web-1' in raw);

  await client.agent.service.deregister('web-1');
  const after = (await client.catalog.service.nodes('web')) as unknown[];
  t.equal(after.length, 0, 'deregistered');
});

t.test('several dev agents run at once and clean their data', async (t) => {
  const [a, b] = await Promise.all([startConsulDev(), startConsulDev()]);
  if (a === undefined || b === undefined) throw new Error('unreachable');
  t.not(a.httpPort, b.httpPort);
  t.not(a.nodeName, b.nodeName);
  const leaderA = await a.api<string>('/v1/status/leader');
  const leaderB = await b.api<string>('/v1/status/leader');
  t.equal(leaderA, `127.0.0.1:${a.serverPort}`);
  t.equal(leaderB, `127.0.0.1:${b.serverPort}`);
  t.ok(existsSync(a.dataDir), 'data folder exists while running');
  await Promise.all([a.stop(), b.stop()]);
  t.notOk(existsSync(a.dataDir), 'data folder removed on stop');
  t.notOk(existsSync(b.dataDir));
  await t.rejects(a.api('/v1/status/leader'), 'stopped agent no longer answers');
});
