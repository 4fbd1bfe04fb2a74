import t from 'tap';
import { collectHostFacts, factsFrom, globalIpv6, type HostFacts } from '../../../agent/run/host-facts.js';
import { isMeshError } from '../../../lib/errors.js';
import { FakeClock } from '../../fakes/clock.js';

const FACTS: HostFacts = { hostname: 'vm1', os: 'Debian GNU/Linux 12', address: '10.0.4.17' };

t.test('a source that never answers: MESH_E_HOST_FACTS at the timeout, naming what to set; the source is aborted', async (t) => {
  const clock = new FakeClock();
  let signal: AbortSignal | undefined;
  const pending = collectHostFacts({
    source: (s) => {
      signal = s;
      return new Promise<never>(() => undefined);
    },
    timeoutMs: 5000,
    clock,
  });
  const result = pending.then(
    () => 'resolved',
    (err: unknown) => err,
  );
  clock.advance(4999);
  t.equal(signal?.aborted, false, 'still waiting before the timeout');
  clock.advance(1);
  const err = await result;
  t.ok(isMeshError(err, 'MESH_E_HOST_FACTS'));
  t.match(
    (err as Error).message,
    /did not finish within 5000 ms; set advertiseAddress \(.*\) and nodeName in the agent configuration, or raise hostFactsTimeout/,
  );
  t.equal(signal?.aborted, true);
  t.same((err as { details?: unknown }).details, { timeoutMs: 5000 });
});

t.test('a source that fails: MESH_E_HOST_FACTS with its reason', async (t) => {
  const clock = new FakeClock();
  const err = await collectHostFacts({
    source: async () => Promise.reject(new Error('spawn /bin/sh ENOENT')),
    timeoutMs: 5000,
    clock,
  }).catch((e: unknown) => e);
  t.ok(isMeshError(err, 'MESH_E_HOST_FACTS'));
  t.match((err as Error).message, /failed: spawn \/bin\/sh ENOENT; set advertiseAddress/);
});

t.test('a source that answers in time: its facts, and the timer is cancelled', async (t) => {
  const clock = new FakeClock();
  t.same(await collectHostFacts({ source: async () => FACTS, timeoutMs: 5000, clock }), FACTS);
  t.equal(clock.pending(), 0, 'no timer left behind');
});

t.test('factsFrom: address6 is the first global IPv6 address of an external interface that is up', async (t) => {
  const os = { distro: 'Debian GNU/Linux', release: '12', platform: 'linux' };
  const nets = [
    { iface: 'lo', internal: true, ip4: '127.0.0.1', ip6: '::1', operstate: 'unknown' },
    { iface: 'eth1', internal: false, ip4: '10.0.0.5', ip6: 'fd00:1::5', operstate: 'down' },
    { iface: 'eth0', internal: false, ip4: '10.0.4.17', ip6: 'fe80::1', operstate: 'up' },
    { iface: 'eth2', internal: false, ip4: '10.0.5.17', ip6: 'fd00:2::17', operstate: 'up' },
  ];
  t.same(factsFrom(os, nets, 'vm1'), { ...FACTS, address6: 'fd00:2::17' }, "systeminformation's one address per interface");
  t.same(
    factsFrom(os, nets, 'vm1', { eth0: ['fe80::1', 'fd00:4::17'], eth1: ['fd00:1::5'] }),
    { ...FACTS, address6: 'fd00:4::17' },
    "node:os's other addresses of an interface (systeminformation keeps the first, here link-local)",
  );
  t.same(factsFrom(os, nets.slice(0, 3), 'vm1'), FACTS, 'none: no address6');
  for (const [address, global] of [
    ['2001:db8::1', true],
    ['fd00::1', true],
    ['fe80::1', false],
    ['FEBF::1', false],
    ['::1', false],
    ['0::1', false],
    ['::', false],
    ['::ffff:10.0.0.1', false],
    ['fd00::1%eth0', false],
    ['10.0.0.1', false],
    ['', false],
  ] as const)
    t.equal(globalIpv6(address), global, address);
});

t.test('factsFrom: the first external IPv4 address that is up; the OS from distro and release', async (t) => {
  const os = { distro: 'Debian GNU/Linux', release: '12', platform: 'linux' };
  const nets = [
    { internal: true, ip4: '127.0.0.1', operstate: 'unknown' },
    { internal: false, ip4: '', operstate: 'up' },
    { internal: false, ip4: '10.0.0.5', operstate: 'down' },
    { internal: false, ip4: '10.0.4.17', operstate: 'up' },
  ];
  t.same(factsFrom(os, nets, 'vm1'), FACTS);
  t.same(factsFrom({ distro: '', release: '', platform: 'linux' }, nets[0] as (typeof nets)[0], 'vm1'), {
    hostname: 'vm1',
    os: 'linux',
    address: '127.0.0.1',
  });
});
