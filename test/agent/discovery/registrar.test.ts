import t from 'tap';
import type { MeshCheck, ServiceRegistration } from '../../../agent/discovery/consul-client.js';
import { createRegistrar, MESH_CHECK_TTL_SYNCS } from '../../../agent/discovery/registrar.js';
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

function meshReg(name: string, meshCheck: MeshCheck): ServiceRegistration {
  return { ...reg(name), meshCheck };
}

function setup(mode?: 'agent' | 'catalog') {
  const consul = new FakeConsul(mode === undefined ? {} : { mode });
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

const NO_SVID: MeshCheck = { status: 'critical', output: 'no SVID for spiffe://example.org/ns/default/sa/web yet' };
const SERVING: MeshCheck = { status: 'passing', output: 'Envoy serves the mesh listener on 18080' };

t.test('agent mode: the mesh check is a TTL check whose status is pushed, never re-registered', async (t) => {
  const { consul, clock, lines, registrar } = setup('agent');
  registrar.setDesired([meshReg('web', NO_SVID)]);
  await flush();
  t.same(consul.meshChecks.get('web-vm1'), { ...NO_SVID, ttlMs: MESH_CHECK_TTL_SYNCS * 5000 }, 'registered critical, reason pushed');
  t.match(registrar.states(), [{ name: 'web', state: 'registered', health: 'critical' }], 'health is the worst of its checks');
  t.equal(consul.calls.filter((c) => c === 'register web-vm1').length, 1);

  const registrations = () => consul.calls.filter((c) => c === 'register web-vm1').length;
  const OTHER_REASON: MeshCheck = { status: 'critical', output: 'Envoy is starting' };
  registrar.setDesired([meshReg('web', OTHER_REASON)]);
  await flush();
  t.same(consul.meshChecks.get('web-vm1'), { ...OTHER_REASON, ttlMs: 15000 });
  t.equal(registrations(), 2, 'a new reason while critical registers again (its Notes reach the catalog at once)');

  registrar.setDesired([meshReg('web', SERVING)]);
  await flush();
  t.same(consul.meshChecks.get('web-vm1'), { ...SERVING, ttlMs: 15000 });
  t.match(registrar.states(), [{ health: 'passing' }]);
  const afterServing = registrations();
  registrar.setDesired([meshReg('web', { status: 'passing', output: 'Envoy serves the mesh listener on 18081' })]);
  await flush();
  t.equal(registrations(), afterServing, 'while passing, a changed output is only pushed, never registered again');
  registrar.setDesired([meshReg('web', SERVING)]);
  await flush();

  const pushes = () => consul.calls.filter((c) => c.startsWith('mesh web-vm1')).length;
  const before = pushes();
  clock.advance(5000);
  await flush();
  t.equal(pushes(), before + 1, 'every sync refreshes the TTL');
  t.equal(lines.filter((l) => l.includes('"msg":"mesh listener check"')).length, 5, 'logged once per change, not per refresh');

  registrar.setDesired([{ ...meshReg('web', SERVING), port: 8081 }]);
  await flush();
  t.equal(consul.registered.get('web-vm1')?.port, 8081, 'other changes still register again');
  t.same(consul.meshChecks.get('web-vm1'), { ...SERVING, ttlMs: 15000 }, 'and the output is pushed again after it');
  await registrar.shutdown();
  t.equal(consul.meshChecks.size, 0, 'deregistered with its service');
});

t.test('agent mode: a mesh check Consul lost makes the next sync register the service again', async (t) => {
  const { consul, clock, lines, registrar } = setup('agent');
  registrar.setDesired([meshReg('web', SERVING)]);
  await flush();
  consul.meshChecks.delete('web-vm1');
  clock.advance(5000);
  await flush();
  t.ok(lines.some((l) => l.includes('mesh listener check update rejected')));
  clock.advance(5000);
  await flush();
  t.equal(consul.calls.filter((c) => c === 'register web-vm1').length, 2);
  t.same(consul.meshChecks.get('web-vm1'), { ...SERVING, ttlMs: 15000 });
  await registrar.shutdown();
});

t.test('catalog mode: the mesh check goes with the registration; a status change registers again', async (t) => {
  const { consul, registrar } = setup('catalog');
  registrar.setDesired([meshReg('web', NO_SVID)]);
  await flush();
  t.same(consul.meshChecks.get('web-vm1'), NO_SVID);
  t.match(registrar.states(), [{ state: 'registered', health: 'critical' }]);
  registrar.setDesired([meshReg('web', SERVING)]);
  await flush();
  t.same(consul.meshChecks.get('web-vm1'), SERVING);
  t.equal(consul.calls.filter((c) => c === 'register web-vm1').length, 2);
  t.notOk(
    consul.calls.some((c) => c.startsWith('mesh ')),
    'nothing pushed',
  );
  t.match(registrar.states(), [{ health: 'passing' }]);
  const measured = { ...SERVING, status: 'passing' as const };
  const check = { name: 'web tcp check', kind: 'tcp' as const, target: '127.0.0.1:8080', interval: '5s', timeout: '2s' };
  registrar.setDesired([{ ...meshReg('web', measured), check: { ...check, status: 'warning', output: 'slow' } }]);
  await flush();
  t.match(registrar.states(), [{ health: 'warning' }], 'worst of the app check and the mesh check');
  await registrar.shutdown();
});

t.test('agent mode: a passing mesh check that changes is pushed alone, not with a whole sync', async (t) => {
  const { consul, registrar } = setup('agent');
  registrar.setDesired([meshReg('web', SERVING), meshReg('api', SERVING)]);
  await registrar.syncNow();
  consul.calls.length = 0;
  const moved: MeshCheck = { status: 'passing', output: 'Envoy serves the mesh listener on 18081' };
  registrar.setDesired([meshReg('web', moved), meshReg('api', SERVING)]);
  await flush();
  t.same(consul.calls, ['mesh web-vm1 passing', 'checkStatuses'], 'only the changed check, then the health read');
  t.equal(consul.meshChecks.get('web-vm1')?.output, moved.output);
  t.equal(consul.meshChecks.get('api-vm1')?.status, 'passing');
  await registrar.shutdown();
  const after = consul.calls.length;
  registrar.setDesired([meshReg('web', SERVING), meshReg('api', moved)]);
  await flush();
  t.equal(consul.calls.length, after, 'nothing is pushed after shutdown');
});
