/**
 * The split DNS proxy against fake resolvers on loopback (UDP servers this
 * test starts on port 0); time is the fake clock, so timeouts are driven, not
 * waited for.
 */
import dgram from 'node:dgram';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import t, { type Test } from 'tap';
import { RCODE } from '../../../agent/tproxy/dns-message.js';
import { type DnsProxy, retryWhilePortTaken, startDnsProxy } from '../../../agent/tproxy/dns-proxy.js';
import { isMeshError } from '../../../lib/errors.js';
import { createLogger } from '../../../lib/logger.js';
import { FakeClock } from '../../fakes/clock.js';
import {
  buildQuery,
  decodeAnswer,
  type FakeReply,
  type FakeResolver,
  lengthPrefixed,
  startFakeResolver,
  tcpAsk,
  udpAsk,
} from '../../support/dns-wire.js';
import { tempDir } from '../../support/temp-dir.js';
import { waitFor } from '../../support/wait.js';

const log = createLogger({ sink: { write: () => {} } });

interface World {
  proxy: DnsProxy;
  clock: FakeClock;
  consul: FakeResolver;
  hosts: FakeResolver[];
}

async function world(t: Test, hostTables: Record<string, FakeReply>[], consulTable: Record<string, FakeReply> = {}): Promise<World> {
  const clock = new FakeClock();
  const consul = await startFakeResolver(consulTable);
  const hosts = await Promise.all(hostTables.map((table) => startFakeResolver(table)));
  const proxy = await startDnsProxy({
    listenPort: 0,
    consulAddress: `127.0.0.1:${consul.port}`,
    domain: 'consul',
    upstreams: hosts.map((h) => ({ address: '127.0.0.1', port: h.port })),
    clock,
    log,
  });
  t.teardown(async () => {
    await proxy.close();
    await Promise.all([consul, ...hosts].map((r) => r.close()));
  });
  return { proxy, clock, consul, hosts };
}

const ask = async (w: World, name: string, id: number) => decodeAnswer(await udpAsk(w.proxy.address.port, buildQuery(name, id)));

t.test('the Consul domain goes to Consul, other names to the host resolver, each answered under its own id', async (t) => {
  const w = await world(t, [{ 'example.org': { address: '192.0.2.7' } }], { 'web.service.consul': { address: '10.1.0.5' } });
  t.equal(w.proxy.address.host, '127.0.0.1');
  t.same(await ask(w, 'web.service.consul', 41), { id: 41, rcode: 0, name: 'web.service.consul', addresses: ['10.1.0.5'] });
  t.same(await ask(w, 'Example.ORG', 42), { id: 42, rcode: 0, name: 'Example.ORG', addresses: ['192.0.2.7'] });
  t.same(await ask(w, 'nope.example.org', 43), { id: 43, rcode: RCODE.NXDOMAIN, name: 'nope.example.org', addresses: [] });
  t.same(
    w.consul.received.map((q) => q.name),
    ['web.service.consul'],
  );
  t.same(
    w.hosts[0]?.received.map((q) => q.name),
    ['example.org', 'nope.example.org'],
  );
  t.match(w.proxy.stats(), {
    queries: 3,
    tcp: 0,
    toConsul: 1,
    toUpstream: 2,
    answered: 3,
    failures: 0,
    timeouts: 0,
    malformed: 0,
    inFlight: 0,
  });
  const sourcePorts = new Set([...w.consul.received, ...(w.hosts[0]?.received ?? [])].map((q) => q.from));
  t.same([...sourcePorts], [w.proxy.status().sourcePort], 'every upstream query leaves from the one source port');
  t.match(w.proxy.status(), { domain: 'consul', consul: `127.0.0.1:${w.consul.port}`, upstreams: [`127.0.0.1:${w.hosts[0]?.port}`] });
});

t.test('clients that chose the same transaction id never get each other’s answer', async (t) => {
  const names = ['a.example', 'b.example', 'c.example'];
  const w = await world(t, [Object.fromEntries(names.map((n) => [n, 'hold' as const]))]);
  const pending = names.map((name) => udpAsk(w.proxy.address.port, buildQuery(name, 7)));
  await waitFor(async () => (w.hosts[0]?.received.length === 3 ? true : undefined), { what: 'three queries upstream' });
  const wireIds = new Set(w.hosts[0]?.received.map((q) => q.id));
  t.equal(wireIds.size, 3, 'the upstream saw three different ids');
  t.equal(w.proxy.stats().inFlight, 3);
  const addressOf: Record<string, string> = { 'a.example': '192.0.2.1', 'b.example': '192.0.2.2', 'c.example': '192.0.2.3' };
  w.hosts[0]?.release((name) => addressOf[name] as string);
  const got = (await Promise.all(pending)).map(decodeAnswer);
  t.same(
    got.map((a) => [a.id, a.name, a.addresses[0]]),
    names.map((n) => [7, n, addressOf[n]]),
  );
});

t.test('a resolver that does not answer in 2 s is skipped for the next one', async (t) => {
  const w = await world(t, [{ 'slow.example': 'hold' }, { 'slow.example': { address: '192.0.2.9' } }]);
  const answer = udpAsk(w.proxy.address.port, buildQuery('slow.example', 5));
  await waitFor(async () => (w.hosts[0]?.received.length === 1 ? true : undefined), { what: 'the query at the first resolver' });
  w.clock.advance(1_999);
  t.equal(w.hosts[1]?.received.length, 0, 'not before the timeout');
  w.clock.advance(1);
  t.same(decodeAnswer(await answer).addresses, ['192.0.2.9']);
  t.match(w.proxy.stats(), { timeouts: 1, answered: 1, failures: 0 });
});

t.test('no resolver answers: SERVFAIL with the question, and the proxy keeps serving', async (t) => {
  const w = await world(t, [{ 'dead.example': 'hold', 'live.example': { address: '192.0.2.4' } }]);
  const answer = udpAsk(w.proxy.address.port, buildQuery('dead.example', 77));
  await waitFor(async () => (w.hosts[0]?.received.length === 1 ? true : undefined), { what: 'the query upstream' });
  w.clock.advance(2_000);
  t.same(decodeAnswer(await answer), { id: 77, rcode: RCODE.SERVFAIL, name: 'dead.example', addresses: [] });
  t.same((await ask(w, 'live.example', 78)).addresses, ['192.0.2.4']);
  t.match(w.proxy.stats(), { queries: 2, failures: 1, timeouts: 1, answered: 1 });
});

t.test('a resolver answering SERVFAIL or REFUSED is skipped while another is left; the last one’s answer is relayed', async (t) => {
  const w = await world(t, [
    { 'x.example': { rcode: RCODE.SERVFAIL }, 'y.example': { rcode: RCODE.REFUSED } },
    { 'x.example': { address: '192.0.2.10' }, 'y.example': { rcode: RCODE.REFUSED } },
  ]);
  t.same((await ask(w, 'x.example', 1)).addresses, ['192.0.2.10']);
  t.equal((await ask(w, 'y.example', 2)).rcode, RCODE.REFUSED);
  t.match(w.proxy.stats(), { answered: 2, failures: 0 });
});

t.test('broken queries get FORMERR or nothing, never a crash', async (t) => {
  const w = await world(t, [{ 'ok.example': { address: '192.0.2.5' } }]);
  const port = w.proxy.address.port;
  const noQuestion = buildQuery('ok.example', 300).subarray(0, 12);
  noQuestion.writeUInt16BE(0, 4);
  const formerr = decodeAnswer(await udpAsk(port, noQuestion));
  t.same(formerr, { id: 300, rcode: RCODE.FORMERR, name: '', addresses: [] });
  const cut = buildQuery('ok.example', 301).subarray(0, 16);
  t.equal(decodeAnswer(await udpAsk(port, cut)).rcode, RCODE.FORMERR);
  const answersBefore = w.proxy.stats().queries;
  // Too short to carry an id: no answer; the proxy counts it and serves the next query.
  const garbage = dgram.createSocket('udp4');
  t.teardown(() => garbage.close());
  garbage.on('message', () => t.fail('an answer to 3 bytes'));
  garbage.send(Buffer.from([0xff, 0x00, 0x01]), port, '127.0.0.1');
  await waitFor(async () => (w.proxy.stats().queries === answersBefore + 1 ? true : undefined), { what: 'the garbage counted' });
  t.same((await ask(w, 'ok.example', 302)).addresses, ['192.0.2.5']);
  t.match(w.proxy.stats(), { malformed: 3, answered: 1 });
  t.equal(w.hosts[0]?.received.length, 1, 'nothing broken was forwarded');
});

t.test('TCP: pipelined queries split across writes are answered with the length prefix', async (t) => {
  const w = await world(t, [{ 'tcp.example': { address: '192.0.2.20' } }], { 'api.service.consul': { address: '10.1.0.6' } });
  const stream = Buffer.concat([lengthPrefixed(buildQuery('tcp.example', 1)), lengthPrefixed(buildQuery('api.service.consul', 2))]);
  const answers = (await tcpAsk(w.proxy.address.port, [stream.subarray(0, 5), stream.subarray(5, 31), stream.subarray(31)], 2)).map(
    decodeAnswer,
  );
  t.same(answers.map((a) => [a.id, a.name, a.addresses]).sort(), [
    [1, 'tcp.example', ['192.0.2.20']],
    [2, 'api.service.consul', ['10.1.0.6']],
  ]);
  t.match(w.proxy.stats(), { queries: 2, tcp: 2, toConsul: 1, toUpstream: 1 });
});

t.test('the host resolvers come from resolv.conf when none are given', async (t) => {
  const dir = await tempDir(t, 'dns-proxy-');
  const file = path.join(dir, 'resolv.conf');
  await writeFile(file, 'nameserver 127.0.0.1\nnameserver 127.0.0.2\n');
  const proxy = await startDnsProxy({
    listenPort: 0,
    consulAddress: '127.0.0.1:8600',
    domain: 'consul',
    resolvConfPath: file,
    clock: new FakeClock(),
    log,
  });
  t.teardown(() => proxy.close());
  t.same(proxy.status().upstreams, ['127.0.0.1:53', '127.0.0.2:53']);
  const unreadable = await startDnsProxy({
    listenPort: 0,
    consulAddress: '127.0.0.1:8600',
    domain: 'consul',
    resolvConfPath: dir,
    clock: new FakeClock(),
    log,
  }).catch((e: unknown) => e);
  t.ok(isMeshError(unreadable, 'MESH_E_DNS_PROXY'), 'an unreadable resolv.conf (here a folder) is MESH_E_DNS_PROXY');
  t.match((unreadable as Error).message, dir);
});

t.test('a taken port fails start with MESH_E_DNS_PROXY, naming the port', async (t) => {
  const w = await world(t, [{}]);
  const err = await startDnsProxy({
    listenPort: w.proxy.address.port,
    consulAddress: '127.0.0.1:8600',
    domain: 'consul',
    upstreams: [],
    clock: w.clock,
    log,
  }).catch((e: unknown) => e);
  t.ok(isMeshError(err) && err.code === 'MESH_E_DNS_PROXY', 'MESH_E_DNS_PROXY');
  t.match((err as Error).message, String(w.proxy.address.port));
  const bad = await startDnsProxy({ listenPort: 0, consulAddress: 'nope', domain: 'consul', upstreams: [], clock: w.clock, log }).catch(
    (e: unknown) => e,
  );
  t.ok(isMeshError(bad) && bad.code === 'MESH_E_CONFIG_INVALID');
});

t.test('identical queries in flight share one upstream query, each answered under its own id', async (t) => {
  const w = await world(t, [{ 'same.example': 'hold' }]);
  const first = udpAsk(w.proxy.address.port, buildQuery('same.example', 1000));
  await waitFor(async () => (w.hosts[0]?.received.length === 1 ? true : undefined), { what: 'the first query upstream' });
  const second = udpAsk(w.proxy.address.port, buildQuery('same.example', 2000));
  await waitFor(async () => (w.proxy.stats().shared === 1 ? true : undefined), { what: 'the second query to join the first' });
  w.hosts[0]?.release(() => '192.0.2.30');
  const answers = [decodeAnswer(await first), decodeAnswer(await second)];
  t.same(
    answers.map((a) => [a.id, a.addresses]),
    [
      [1000, ['192.0.2.30']],
      [2000, ['192.0.2.30']],
    ],
  );
  t.equal(w.hosts[0]?.received.length, 1, 'the resolver was asked once');
  t.match(w.proxy.stats(), { queries: 2, shared: 1, answered: 2 });
});

t.test('a resolver whose own queries come back to the proxy (a loop) fails after the timeout instead of multiplying', async (t) => {
  const w = await world(t, [{}]);
  // A "local stub" that sends every query it gets back to the proxy (as if its upstream query were captured).
  const stub = dgram.createSocket('udp4');
  const seen: number[] = [];
  const relayed: number[] = [];
  let proxyPort = 0;
  stub.on('message', (query, rinfo) => {
    seen.push(query.readUInt16BE(0));
    void udpAsk(proxyPort, query).then((answer) => {
      relayed.push(decodeAnswer(answer).rcode);
      stub.send(answer, rinfo.port, rinfo.address);
    });
  });
  await new Promise<void>((resolve) => stub.bind(0, '127.0.0.1', resolve));
  t.teardown(() => stub.close());
  const proxy = await startDnsProxy({
    listenPort: 0,
    consulAddress: '127.0.0.1:8600',
    domain: 'consul',
    upstreams: [{ address: '127.0.0.1', port: stub.address().port }],
    clock: w.clock,
    log,
  });
  t.teardown(() => proxy.close());
  proxyPort = proxy.address.port;
  const answer = udpAsk(proxy.address.port, buildQuery('loop.example', 9));
  await waitFor(async () => (proxy.stats().shared === 1 ? true : undefined), { what: 'the looped query to join the first' });
  t.equal(seen.length, 1, 'the stub was asked once: the loop did not multiply');
  w.clock.advance(2_000);
  t.same(decodeAnswer(await answer), { id: 9, rcode: RCODE.SERVFAIL, name: 'loop.example', addresses: [] });
  await waitFor(async () => (relayed.length === 1 ? true : undefined), { what: 'the stub to relay its SERVFAIL' });
  t.same(relayed, [RCODE.SERVFAIL], 'the looped query failed too (its late answer is dropped by the proxy)');
  t.match(proxy.stats(), { queries: 2, shared: 1, failures: 2, timeouts: 1, inFlight: 0 });
});

t.test('listening on 127.0.0.1 and ::1 too: one port, both answer', async (t) => {
  const host = await startFakeResolver({ 'six.example': { address: '192.0.2.66' } });
  t.teardown(() => host.close());
  const proxy = await startDnsProxy({
    listenPort: 0,
    listenAddresses: ['127.0.0.1', '::1'],
    consulAddress: '127.0.0.1:8600',
    domain: 'consul',
    upstreams: [{ address: '127.0.0.1', port: host.port }],
    clock: new FakeClock(),
    log,
  });
  t.teardown(() => proxy.close());
  for (const address of ['127.0.0.1', '::1']) {
    t.same(decodeAnswer(await udpAsk(proxy.address.port, buildQuery('six.example', 6), address)).addresses, ['192.0.2.66'], address);
  }
});

t.test(
  'listenPort 0: a start whose port turns out taken is tried again, up to 5 times; other failures and fixed ports fail at once',
  async (t) => {
    const taken = () => Object.assign(new Error('DNS proxy cannot listen'), { cause: { code: 'EADDRINUSE' } });
    const failing = (failures: number, error: () => Error = taken) => {
      let calls = 0;
      const start = async () => {
        calls += 1;
        if (calls <= failures) throw error();
        return `started on try ${calls}`;
      };
      return { start, calls: () => calls };
    };
    const twice = failing(2);
    t.equal(await retryWhilePortTaken(true, twice.start), 'started on try 3');
    t.equal(twice.calls(), 3);
    const always = failing(10);
    await t.rejects(retryWhilePortTaken(true, always.start), { cause: { code: 'EADDRINUSE' } });
    t.equal(always.calls(), 5, 'gives up after 5 tries');
    const fixed = failing(1);
    await t.rejects(retryWhilePortTaken(false, fixed.start), { cause: { code: 'EADDRINUSE' } });
    t.equal(fixed.calls(), 1, 'a fixed port is not tried again');
    const other = failing(1, () => new Error('resolv.conf unreadable'));
    await t.rejects(retryWhilePortTaken(true, other.start), /resolv.conf unreadable/);
    t.equal(other.calls(), 1, 'another failure is not tried again');
  },
);
