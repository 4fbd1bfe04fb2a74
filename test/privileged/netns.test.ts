/**
 * Test hosts as network namespaces joined by veth pairs: a TCP server in one
 * host is reached from another over the veth segment, and removal leaves no
 * namespace or interface behind.
 */
import t from 'tap';
import { run } from '../../lib/exec.js';
import { createNetwork, listNetns, privilegedSkipReason } from '../support/netns.js';
import { waitFor } from '../support/wait.js';

const skip = await privilegedSkipReason();
if (skip !== undefined) process.stderr.write(`# skipping privileged tests: ${skip}\n`);

t.test('two hosts reach each other over veth, and removal leaves nothing', { skip: skip ?? false, timeout: 60_000 }, async (t) => {
  const net = await createNetwork(2);
  t.teardown(() => net.remove().catch(() => {}));
  const [server, client] = net.hosts;
  if (server === undefined || client === undefined) throw new Error('two hosts expected');
  t.equal(server.address, '10.77.0.1');
  t.equal(client.address, '10.77.0.2');

  const names = await listNetns();
  for (const ns of net.namespaces) t.ok(names.includes(ns), `namespace ${ns} exists`);

  const port = 18080;
  const program = `require('net').createServer(s => s.end('hello from ' + require('os').hostname() + ' ns')).listen(${port}, '${server.address}', () => console.log('listening'))`;
  const listener = server.spawn(process.execPath, ['-e', program]);
  t.teardown(() => listener.stop());
  await waitFor(async () => (listener.output().includes('listening') ? true : undefined), { what: 'the server in the namespace' });

  const reached = await client.exec(process.execPath, ['-e', tcpProbe(server.address, port)], { timeoutMs: 10_000 });
  t.equal(reached.code, 0, `client connected: ${reached.stderr}`);
  t.match(reached.stdout, /hello from/);

  // The test segment exists only inside the namespaces: the root namespace has no interface on it.
  const rootAddrs = await run('ip', ['-o', 'addr', 'show']);
  t.notMatch(rootAddrs.stdout, /10\.77\.0\./, 'the root namespace has no address on the test segment');

  const links = await run('ip', ['-o', 'link', 'show']);
  t.notMatch(links.stdout, new RegExp(net.id), 'no veth end is left in the root namespace');

  await listener.stop();
  await net.remove();
  const after = await listNetns();
  for (const ns of net.namespaces) t.notOk(after.includes(ns), `namespace ${ns} removed`);
});

/** A node program that connects, prints what it reads, and exits 3 on error or after 2 s. */
function tcpProbe(host: string, port: number): string {
  return `const s = require('net').connect(${port}, '${host}');
let d = '';
s.setTimeout(2000, () => process.exit(3));
s.on('data', (c) => (d += c));
s.on('end', () => console.log(d));
s.on('error', (e) => { console.error(e.code); process.exit(3); });`;
}
