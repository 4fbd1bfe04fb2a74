import { readFileSync } from 'node:fs';
import net from 'node:net';
import t from 'tap';
import { freePorts, POOL_LOW, parsePortRange, poolBelow } from '../../lib/ports.js';

const listen = (port: number) =>
  new Promise<net.Server>((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen({ port, host: '127.0.0.1', exclusive: true }, () => resolve(s));
  });
const close = (s: net.Server) => new Promise((resolve) => s.close(resolve));

t.test('the ephemeral range is read as the kernel writes it, and nonsense is refused', async (t) => {
  t.same(parsePortRange('32768\t60999\n'), { low: 32768, high: 60999 });
  t.same(parsePortRange(' 1024 65535 '), { low: 1024, high: 65535 });
  t.equal(parsePortRange('60999 32768'), undefined, 'reversed');
  t.equal(parsePortRange('0 100'), undefined, 'port 0');
  t.equal(parsePortRange('1024 70000'), undefined, 'past 65535');
  t.equal(parsePortRange('abc'), undefined);
});

t.test('the pool lies below the ephemeral range, unless that leaves too little room', async (t) => {
  t.same(poolBelow(32768), { low: POOL_LOW, high: 32767 });
  t.equal(poolBelow(POOL_LOW + 500), undefined);
});

t.test("on this host: distinct ports below the ephemeral range, each free once they're returned", async (t) => {
  const range = parsePortRange(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8'));
  t.ok(range, 'the host has an ephemeral range');
  const ports = await freePorts(5);
  t.equal(new Set(ports).size, 5, `distinct: ${ports.join(' ')}`);
  for (const p of ports) {
    t.ok(p >= POOL_LOW && p < (range?.low ?? 0), `${p} is below the ephemeral range ${range?.low}`);
    await close(await listen(p));
  }
});

t.test('a port in use is skipped; a full pool falls back to a port the kernel picks', async (t) => {
  const [p] = await freePorts(1);
  const pool = { low: p, high: p };
  t.same(await freePorts(1, '127.0.0.1', { pool }), [p], 'the free port of a one-port pool');
  const held = await listen(p);
  t.teardown(() => close(held));
  const [q] = await freePorts(1, '127.0.0.1', { pool });
  t.not(q, p, `the held port ${p} is not given`);
  await close(await listen(q));
});

t.test('the search starts at the random offset and wraps around the pool', async (t) => {
  const pool = await freeRun();
  t.same(await freePorts(2, '127.0.0.1', { pool, random: () => 1 }), [pool.high, pool.low], 'from the offset, then wrapped');
});

/** Two adjacent free ports, as a pool. */
async function freeRun(): Promise<{ low: number; high: number }> {
  for (;;) {
    const [p] = await freePorts(1);
    if (p >= 65_535) continue;
    const s = await listen(p + 1).catch(() => undefined);
    if (s !== undefined) {
      await close(s);
      return { low: p, high: p + 1 };
    }
  }
}
