import t from 'tap';
import type { ServiceRegistration } from '../../../agent/discovery/consul-client.js';
import { createRegistrar } from '../../../agent/discovery/registrar.js';
import { backoffDelay } from '../../../lib/backoff.js';
import { createLogger } from '../../../lib/logger.js';
import { FakeClock } from '../../fakes/clock.js';
import { FakeConsul } from '../../fakes/consul.js';

const flush = async () => {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
};

function reg(name: string, port = 8080): ServiceRegistration {
  return { id: `${name}-vm1`, name, address: '10.0.0.1', port, tags: [], meta: {}, weight: 1, meshPort: port + 10000, check: undefined };
}

function setup() {
  const consul = new FakeConsul();
  const clock = new FakeClock();
  const lines: string[] = [];
  const log = createLogger({ sink: { write: (l) => lines.push(l) }, clock });
  const states: string[] = [];
  const registrar = createRegistrar({
    client: consul,
    clock,
    log,
    backoff: { initialMs: 100, maxMs: 1000 },
    syncIntervalMs: 5000,
    random: () => 1,
    onState: (s) => states.push(s),
  });
  return { consul, clock, lines, registrar, states };
}

t.test('backoff grows, is capped and jittered', async (t) => {
  const p = { initialMs: 100, maxMs: 1000 };
  t.equal(
    backoffDelay(p, 0, () => 1),
    100,
  );
  t.equal(
    backoffDelay(p, 0, () => 0),
    50,
  );
  t.equal(
    backoffDelay(p, 3, () => 1),
    800,
  );
  t.equal(
    backoffDelay(p, 10, () => 1),
    1000,
  );
  t.equal(
    backoffDelay(p, 100, () => 0.5),
    750,
  );
  const d = backoffDelay(p, 2);
  t.ok(d >= 200 && d <= 400);
});

t.test('registers, updates and deregisters the desired set', async (t) => {
  const { consul, registrar, states } = setup();
  registrar.setDesired([reg('web'), reg('api', 9090)]);
  await flush();
  t.same([...consul.registered.keys()].sort(), ['api-vm1', 'web-vm1']);
  t.equal(registrar.connection(), 'connected');
  t.same(states, ['connected']);
  t.same(
    registrar.states().map((s) => s.state),
    ['registered', 'registered'],
  );
  const before = consul.calls.length;
  registrar.setDesired([reg('web'), reg('api', 9090)]);
  await flush();
  t.notOk(
    consul.calls.slice(before).some((c) => c.startsWith('register ')),
    'unchanged: no re-register',
  );
  registrar.setDesired([reg('web', 8081)]);
  await flush();
  t.same([...consul.registered.keys()], ['web-vm1']);
  t.equal(consul.registered.get('web-vm1')?.port, 8081, 'updated');
  await registrar.shutdown();
  t.equal(consul.registered.size, 0, 'shutdown deregisters');
});

t.test('unreachable: backoff, one log line per state change, then restore after a wipe', async (t) => {
  const { consul, clock, lines, registrar, states } = setup();
  consul.down = true;
  registrar.setDesired([reg('web')]);
  await flush();
  t.equal(registrar.connection(), 'unreachable');
  t.same(registrar.states()[0]?.state, 'pending');
  for (let i = 0; i < 5; i++) {
    clock.advance(1000);
    await flush();
  }
  t.equal(lines.filter((l) => l.includes('consul unreachable')).length, 1, 'logged once');
  consul.down = false;
  clock.advance(1000);
  await flush();
  t.equal(registrar.connection(), 'connected');
  t.ok(consul.registered.has('web-vm1'));
  t.same(states, ['unreachable', 'connected']);
  consul.wipe();
  clock.advance(5000);
  await flush();
  t.ok(consul.registered.has('web-vm1'), 'back within one sync interval after Consul lost its state');
  await registrar.shutdown();
});

t.test('a rejected registration is reported and not retried until it changes', async (t) => {
  const { consul, clock, lines, registrar } = setup();
  consul.rejectIds.add('bad-vm1');
  registrar.setDesired([reg('web'), reg('bad', 7000)]);
  await flush();
  t.equal(registrar.connection(), 'connected');
  t.match(registrar.states(), [
    { name: 'web', state: 'registered' },
    { name: 'bad', state: 'rejected', error: /bad definition/ },
  ]);
  const n = consul.calls.filter((c) => c === 'register bad-vm1').length;
  clock.advance(5000);
  await flush();
  t.equal(consul.calls.filter((c) => c === 'register bad-vm1').length, n, 'not retried');
  t.equal(lines.filter((l) => l.includes('registration rejected')).length, 1);
  consul.rejectIds.clear();
  registrar.setDesired([reg('web'), reg('bad', 7001)]);
  await flush();
  t.ok(consul.registered.has('bad-vm1'));
  registrar.setDesired([reg('web')]);
  await flush();
  t.notOk(consul.registered.has('bad-vm1'));
  await registrar.shutdown();
});

t.test('removal while down is retried; shutdown while down does not hang', async (t) => {
  const { consul, clock, registrar } = setup();
  registrar.setDesired([reg('web'), reg('api', 9090)]);
  await flush();
  consul.down = true;
  registrar.setDesired([reg('web')]);
  await flush();
  t.ok(consul.registered.has('api-vm1'), 'still there while Consul is down');
  consul.down = false;
  clock.advance(1000);
  await flush();
  t.notOk(consul.registered.has('api-vm1'), 'removed once Consul answers');
  consul.down = true;
  await registrar.shutdown();
  t.ok(consul.registered.has('web-vm1'), 'could not deregister while down');
  registrar.setDesired([reg('x')]);
  await flush();
  t.notOk(consul.registered.has('x-vm1'), 'nothing after shutdown');
});

t.test('syncNow coalesces concurrent requests', async (t) => {
  const { consul, registrar } = setup();
  registrar.setDesired([reg('web')]);
  await Promise.all([registrar.syncNow(), registrar.syncNow()]);
  t.ok(consul.registered.has('web-vm1'));
  await registrar.shutdown();
});
