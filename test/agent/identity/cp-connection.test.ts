/**
 * The control-plane connection: calls run on the newest client, a replaced
 * client is closed only once its calls have ended, unusable credentials leave
 * no client, and close() ends it for good.
 */
import t from 'tap';
import { createControlPlaneConnection } from '../../../agent/identity/cp-connection.js';
import { FakeClock } from '../../fakes/clock.js';
import { FakeControlPlane } from '../../fakes/control-plane-client.js';

const node = (n: number) => ({ chainPem: `chain ${n}`, keyPem: `key ${n}` });

function setup() {
  const fake = new FakeControlPlane(new FakeClock(Date.now()));
  const connection = createControlPlaneConnection({ address: '127.0.0.1:9', trustDomain: 'example.org', connect: fake.connect });
  return { fake, connection };
}

t.test('a client is made with the node credentials and bundle; calls run on it', async (t) => {
  const { fake, connection } = setup();
  await t.rejects(
    connection.call(async () => 1),
    { code: 'MESH_E_CONTROLPLANE_UNAVAILABLE' },
    'no client yet',
  );
  const client = connection.replace({ node: node(1), bundlePem: 'roots 1' });
  t.match(fake.lastClient()?.options, { address: '127.0.0.1:9', trustDomain: 'example.org', bundlePem: 'roots 1', node: node(1) });
  t.equal(connection.client(), client);
  t.equal(await connection.call(async (c) => (c === client ? 'on it' : 'elsewhere')), 'on it');
  t.equal(connection.inflight(), 0);
});

t.test('a replaced client is closed once its last call ends, not before', async (t) => {
  const { fake, connection } = setup();
  const first = connection.replace({ node: node(1), bundlePem: 'roots' });
  let finish: (value: string) => void = () => {};
  const running = connection.call(() => new Promise<string>((resolve) => (finish = resolve)));
  t.equal(connection.inflight(), 1);

  const second = connection.replace({ node: node(2), bundlePem: 'roots' });
  t.not(second, first);
  t.notOk(fake.clients[0]?.closed, 'the old client stays open while its call runs');
  t.equal(await connection.call(async (c) => c), second, 'new calls use the new client');

  finish('done');
  t.equal(await running, 'done', 'the call on the old client completes');
  t.ok(fake.clients[0]?.closed, 'then the old client is closed');
  t.notOk(fake.clients[1]?.closed);
  t.equal(connection.inflight(), 0);

  connection.replace({ node: node(3), bundlePem: 'roots' });
  t.ok(fake.clients[1]?.closed, 'an idle client is closed at once when replaced');
});

t.test('a failed call still releases its client', async (t) => {
  const { fake, connection } = setup();
  connection.replace({ node: node(1), bundlePem: 'roots' });
  let fail: (err: Error) => void = () => {};
  const running = connection.call(() => new Promise((_, reject) => (fail = reject)));
  connection.replace({ node: node(2), bundlePem: 'roots' });
  fail(new Error('boom'));
  await t.rejects(running, /boom/);
  t.ok(fake.clients[0]?.closed);
});

t.test('unusable credentials leave no client; calls fail as unavailable until a replace succeeds', async (t) => {
  const { fake, connection } = setup();
  connection.replace({ node: node(1), bundlePem: 'roots' });
  fake.connectError = new Error('bad key');
  t.throws(() => connection.replace({ node: node(2), bundlePem: 'roots' }), { code: 'MESH_E_CERT_INVALID', message: /bad key/ });
  t.ok(fake.clients[0]?.closed, 'the old client was retired');
  t.equal(connection.client(), undefined);
  await t.rejects(
    connection.call(async () => 1),
    { code: 'MESH_E_CONTROLPLANE_UNAVAILABLE' },
  );
  fake.connectError = undefined;
  connection.replace({ node: node(3), bundlePem: 'roots' });
  t.equal(await connection.call(async () => 'back'), 'back');
});

t.test('close: running calls finish, their client is closed after; nothing new starts', async (t) => {
  const { fake, connection } = setup();
  connection.replace({ node: node(1), bundlePem: 'roots' });
  let finish: () => void = () => {};
  const running = connection.call(() => new Promise<void>((resolve) => (finish = resolve)));
  connection.close();
  t.equal(connection.client(), undefined);
  t.notOk(fake.clients[0]?.closed);
  await t.rejects(
    connection.call(async () => 1),
    { code: 'MESH_E_CONTROLPLANE_UNAVAILABLE' },
  );
  t.throws(() => connection.replace({ node: node(2), bundlePem: 'roots' }), { code: 'MESH_E_INTERNAL' });
  finish();
  await running;
  t.ok(fake.clients[0]?.closed);
  t.equal(fake.clients.length, 1);
});
