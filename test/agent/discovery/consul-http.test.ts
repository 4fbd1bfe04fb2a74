/**
 * The Consul edge (consul-http.ts, over the `consul` package) against a stub HTTP
 * server on port 0 that records what arrives and answers as told: the request
 * shapes of both modes (token, datacenter, the hand-written bodies), blocking
 * query parameters, error codes, and the cancellation of a blocking query (the
 * stub holds it open; the abort must close the connection). What Consul does
 * with these requests is tested against the real Consul in
 * test/integration/consul-mesh-check.test.ts.
 */
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import type { ServiceRegistration } from '../../../agent/discovery/consul-client.js';
import { createConsulHttpClient } from '../../../agent/discovery/consul-http.js';
import { isMeshError } from '../../../lib/errors.js';
import { freePorts } from '../../support/ports.js';

interface Seen {
  method: string;
  url: string;
  token: string | undefined;
  body: unknown;
}

type Answer = { status: number; body?: unknown; headers?: Record<string, string> } | 'hold';

async function stub(answer: (seen: Seen) => Answer) {
  const seen: Seen[] = [];
  const held: http.ServerResponse[] = [];
  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    const s: Seen = {
      method: req.method ?? '',
      url: req.url ?? '',
      token: req.headers['x-consul-token'] as string | undefined,
      body: text === '' ? undefined : JSON.parse(text),
    };
    seen.push(s);
    server.emit('seen', s, req);
    const a = answer(s);
    if (a === 'hold') {
      held.push(res);
      return;
    }
    const json = typeof a.body !== 'string';
    res.writeHead(a.status, { 'content-type': json ? 'application/json' : 'text/plain; charset=utf-8', ...a.headers });
    res.end(json ? JSON.stringify(a.body ?? null) : a.body);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    address,
    seen,
    server,
    close: async () => {
      for (const r of held) r.destroy();
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}

const reg: ServiceRegistration = {
  id: 'web-vm1',
  name: 'web',
  address: '10.0.0.1',
  port: 8080,
  tags: ['v1'],
  meta: { mesh_port: '18080' },
  weight: 3,
  meshPort: 18080,
  check: { name: 'web http check', kind: 'http', target: 'http://127.0.0.1:8080/healthz', interval: '5s', timeout: '2s' },
  meshCheck: { status: 'critical', output: 'no SVID yet' },
};

const clientFor = (address: string, mode: 'agent' | 'catalog', datacenter = 'dc7') =>
  createConsulHttpClient({
    mode,
    address,
    token: 'secret-token',
    datacenter,
    nodeName: 'vm1',
    nodeAddress: '10.0.0.1',
    nodeMeta: { 'mesh-os': 'linux' },
  });

t.test('agent mode: service register body, mesh check push, token on every call', async (t) => {
  const s = await stub((r) => {
    if (r.url.startsWith('/v1/agent/services')) return { status: 200, body: { 'web-vm1': {} } };
    if (r.url.startsWith('/v1/agent/checks'))
      return {
        status: 200,
        body: {
          'service:web-vm1': { ServiceID: 'web-vm1', Status: 'passing' },
          'mesh:web-vm1': { ServiceID: 'web-vm1', Status: 'critical' },
        },
      };
    return { status: 200 };
  });
  t.teardown(s.close);
  const client = clientFor(s.address, 'agent');
  await client.register(reg, { meshCheckTtlMs: 15_000 });
  await client.setMeshCheck?.('web-vm1', { status: 'critical', output: 'no SVID yet' });
  await client.setMeshCheck?.('web-vm1', { status: 'passing', output: 'Envoy serves the mesh listener' });
  t.same([...(await client.registeredIds())], ['web-vm1']);
  t.same([...((await client.checkStatuses?.()) ?? [])], [['web-vm1', 'critical']], 'worst of the service checks');
  await client.deregister('web-vm1');

  t.same(
    s.seen.map((r) => `${r.method} ${r.url}`),
    [
      'PUT /v1/agent/service/register?replace-existing-checks=true',
      'PUT /v1/agent/check/fail/mesh%3Aweb-vm1?note=no%20SVID%20yet',
      'PUT /v1/agent/check/pass/mesh%3Aweb-vm1?note=Envoy%20serves%20the%20mesh%20listener',
      'GET /v1/agent/services',
      'GET /v1/agent/checks',
      'PUT /v1/agent/service/deregister/web-vm1',
    ],
  );
  t.ok(
    s.seen.every((r) => r.token === 'secret-token'),
    'the ACL token goes with every call',
  );
  t.same(s.seen[0]?.body, {
    ID: 'web-vm1',
    Name: 'web',
    Address: '10.0.0.1',
    Port: 8080,
    Tags: ['v1'],
    Meta: { mesh_port: '18080' },
    Weights: { Passing: 3, Warning: 1 },
    TaggedAddresses: { mesh: { Address: '10.0.0.1', Port: 18080 } },
    Checks: [
      { CheckID: 'service:web-vm1', Name: 'web http check', Interval: '5s', Timeout: '2s', HTTP: 'http://127.0.0.1:8080/healthz' },
      {
        CheckID: 'mesh:web-vm1',
        Name: 'web mesh listener',
        Notes: "passing only while Envoy serves this workload's mesh listener (mesh-agent); not serving: no SVID yet",
        TTL: '15s',
        Status: 'critical',
      },
    ],
  });
});

t.test('catalog mode: node, service and both reported checks; datacenter in the body', async (t) => {
  const s = await stub((r) =>
    r.url.startsWith('/v1/catalog/node/') ? { status: 200, body: { Services: { 'web-vm1': {} } } } : { status: 200 },
  );
  t.teardown(s.close);
  const client = clientFor(s.address, 'catalog');
  t.equal(client.setMeshCheck, undefined, 'catalog mode reports the mesh check with the registration');
  await client.register(
    { ...reg, check: reg.check && { ...reg.check, status: 'passing', output: 'HTTP 200' } },
    { meshCheckTtlMs: 15_000 },
  );
  t.same([...(await client.registeredIds())], ['web-vm1']);
  await client.deregister('web-vm1');
  t.same(
    s.seen.map((r) => `${r.method} ${r.url}`),
    ['PUT /v1/catalog/register', 'GET /v1/catalog/node/vm1?dc=dc7', 'PUT /v1/catalog/deregister'],
  );
  t.match(s.seen[0]?.body, {
    Node: 'vm1',
    Address: '10.0.0.1',
    Datacenter: 'dc7',
    NodeMeta: { 'mesh-os': 'linux', 'mesh-agent': 'catalog' },
    Service: { ID: 'web-vm1', Service: 'web', Weights: { Passing: 3 }, TaggedAddresses: { mesh: { Port: 18080 } } },
    Checks: [
      { CheckID: 'service:web-vm1', Name: 'web http check', ServiceID: 'web-vm1', Status: 'passing', Output: 'HTTP 200' },
      { CheckID: 'mesh:web-vm1', Name: 'web mesh listener', ServiceID: 'web-vm1', Status: 'critical', Output: 'no SVID yet' },
    ],
  });
  t.same(s.seen[2]?.body, { Node: 'vm1', ServiceID: 'web-vm1', Datacenter: 'dc7' });
  t.ok(s.seen.every((r) => r.token === 'secret-token'));
});

t.test('health: index and wait of a blocking query, the datacenter, the answer index', async (t) => {
  const s = await stub(() => ({
    status: 200,
    headers: { 'X-Consul-Index': '42' },
    body: [
      {
        Node: { Node: 'n1', Address: '10.0.0.9', Datacenter: 'dc7' },
        Service: { ID: 'api-1', Service: 'api', Port: 9000, Weights: { Passing: 2 }, TaggedAddresses: { mesh: { Port: 19000 } } },
        Checks: [{ Status: 'passing' }, { Status: 'critical' }],
      },
    ],
  }));
  t.teardown(s.close);
  const client = clientFor(s.address, 'agent');
  const first = await client.healthService('api', { index: 0, waitMs: 60_000 });
  const next = await client.healthService('api', { index: 41, waitMs: 60_000 });
  t.same(
    s.seen.map((r) => r.url),
    ['/v1/health/service/api?dc=dc7', '/v1/health/service/api?dc=dc7&index=41&wait=60000ms'],
  );
  t.equal(first.index, 42);
  t.match(next.entries, [
    {
      node: 'n1',
      serviceId: 'api-1',
      address: '10.0.0.9',
      port: 9000,
      weight: 2,
      taggedMeshPort: 19000,
      checks: [{ status: 'passing' }, { status: 'critical' }],
    },
  ]);
});

t.test('an abort cancels a blocking query in flight: the promise rejects and the connection closes', async (t) => {
  const s = await stub(() => 'hold');
  t.teardown(s.close);
  const client = clientFor(s.address, 'agent');
  const inFlight = once(s.server, 'seen') as Promise<[Seen, http.IncomingMessage]>;
  const abort = new AbortController();
  const query = client.healthService('api', { index: 7, waitMs: 600_000, signal: abort.signal });
  const [seen, req] = await inFlight;
  t.match(seen.url, /index=7&wait=600000ms/, 'the query is blocking on the server');
  const closed = once(req.socket, 'close');
  abort.abort();
  await t.rejects(query, { name: 'AbortError' }, 'rejects with the signal reason');
  await closed;
  t.pass('the connection of the aborted query is closed');
  const already = new AbortController();
  already.abort();
  await t.rejects(client.healthService('api', { index: 7, waitMs: 600_000, signal: already.signal }), { name: 'AbortError' });
  t.equal(s.seen.length, 1, 'an already aborted signal sends nothing');
});

t.test('errors: HTTP errors keep the status and the whole message; network failures are unreachable', async (t) => {
  const long = `Invalid check: ${'x'.repeat(120)} (more than papi keeps in its own message)`;
  const s = await stub((r) =>
    r.url.includes('/agent/check/') ? { status: 404, body: 'Unknown check ID "mesh:web-vm1".' } : { status: 400, body: long },
  );
  t.teardown(s.close);
  const client = clientFor(s.address, 'agent');
  const err = await client.register(reg, { meshCheckTtlMs: 15_000 }).catch((e: unknown) => e);
  t.ok(isMeshError(err, 'MESH_E_CONSUL_REJECTED'));
  t.match((err as Error).message, `Consul rejected PUT /v1/agent/service/register: HTTP 400: ${long}`);
  t.match((err as { details?: unknown }).details, { status: 400 });
  const missing = await client.setMeshCheck?.('web-vm1', { status: 'passing', output: '' }).catch((e: unknown) => e);
  t.ok(isMeshError(missing, 'MESH_E_CONSUL_REJECTED'));
  t.match((missing as Error).message, /HTTP 404: Unknown check ID "mesh:web-vm1"/);

  const [closedPort] = await freePorts(1);
  const down = clientFor(`127.0.0.1:${closedPort}`, 'catalog');
  const unreachable = await down.registeredIds().catch((e: unknown) => e);
  t.ok(isMeshError(unreachable, 'MESH_E_CONSUL_UNREACHABLE'));
  t.match((unreachable as Error).message, /did not answer GET \/v1\/catalog\/node\/vm1: .*ECONNREFUSED/);
});

t.test('a request timeout is unreachable', async (t) => {
  const s = await stub(() => 'hold');
  t.teardown(s.close);
  const client = createConsulHttpClient({
    mode: 'agent',
    address: s.address,
    token: '',
    datacenter: '',
    nodeName: 'vm1',
    nodeAddress: '10.0.0.1',
    requestTimeoutMs: 50,
  });
  const err = await client.registeredIds().catch((e: unknown) => e);
  t.ok(isMeshError(err, 'MESH_E_CONSUL_UNREACHABLE'));
  t.match((err as Error).message, /timed out/);
  t.equal(s.seen[0]?.token, undefined, 'no token header without a token');
});
