import t from 'tap';
import { isMeshError } from '../../../lib/errors.js';
import { FakeIptablesRunner } from '../../fakes/iptables.js';

async function failure(p: Promise<unknown>): Promise<string> {
  return p.then(
    () => 'no error',
    (err: unknown) => (isMeshError(err) ? `${err.code}: ${err.message}` : String(err)),
  );
}

t.test('the fake prints tables like iptables-save and applies restore operations', async (t) => {
  const fake = new FakeIptablesRunner();
  t.equal(
    await fake.save('ipv4', 'nat'),
    '*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n',
  );
  await fake.restore('ipv4', '*filter\n:A - [0:0]\n-A A -j ACCEPT\n-A INPUT -j A\n-I A -j DROP\nCOMMIT\n');
  t.match(await fake.save('ipv4', 'filter'), ':A - [0:0]\n-A INPUT -j A\n-A A -j DROP\n-A A -j ACCEPT\n');
  await fake.restore('ipv4', '*filter\n:A - [0:0]\n-D INPUT -j A\n-X A\nCOMMIT\n');
  t.notMatch(await fake.save('ipv4', 'filter'), /:A |-j A/);
  t.equal(fake.restores.length, 2);
});

t.test('a failing line rolls back the whole transaction', async (t) => {
  const fake = new FakeIptablesRunner();
  const before = await fake.save('ipv4', 'nat');
  t.match(
    await failure(fake.restore('ipv4', '*nat\n:X - [0:0]\n-A X -j RETURN\n-D OUTPUT -j NOPE\nCOMMIT\n')),
    /MESH_E_TPROXY_IPTABLES: .*line 4/,
  );
  t.equal(await fake.save('ipv4', 'nat'), before);
  t.match(await failure(fake.restore('ipv4', '*nat\n-A OUTPUT -j MISSING\nCOMMIT\n')), /chain MISSING does not exist/);
  await fake.restore('ipv4', '*nat\n:X - [0:0]\n-A OUTPUT -j X\nCOMMIT\n');
  t.match(await failure(fake.restore('ipv4', '*nat\n-X X\nCOMMIT\n')), /cannot delete chain X/, 'a referenced chain is not deleted');
});

t.test('families are separate; no IPv6 when asked', async (t) => {
  const fake = new FakeIptablesRunner({ ipv6: false });
  fake.load('ipv4', '*nat\n:F - [0:0]\nCOMMIT\n');
  t.match(await fake.save('ipv4', 'nat'), ':F - [0:0]');
  t.match(await failure(fake.save('ipv6', 'nat')), /MESH_E_TPROXY_IPTABLES/);
  const both = new FakeIptablesRunner();
  both.load('ipv4', '*nat\n:F - [0:0]\nCOMMIT\n');
  t.notMatch(await both.save('ipv6', 'nat'), ':F');
});

t.test('deleteRule is a hand edit, failRestores fails the next restores', async (t) => {
  const fake = new FakeIptablesRunner();
  fake.load('ipv4', '*nat\n-A OUTPUT -p tcp -m comment --comment "a b" -j RETURN\nCOMMIT\n');
  fake.deleteRule('ipv4', 'nat', '-A OUTPUT -p tcp -m comment --comment "a b" -j RETURN');
  t.notMatch(await fake.save('ipv4', 'nat'), /-A OUTPUT/);
  t.equal(fake.restores.length, 0);
  fake.failRestores(1, 'boom');
  t.match(await failure(fake.restore('ipv4', '*nat\nCOMMIT\n')), /boom/);
  t.equal(await failure(fake.restore('ipv4', '*nat\nCOMMIT\n')), 'no error');
});
