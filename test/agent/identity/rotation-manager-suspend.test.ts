/** Suspended hosts and the timer bookkeeping of the rotation manager. */
import t from 'tap';
import { flush } from '../../support/flush.js';
import { HOUR, MIN, type PemCert, SEC, setup } from './rotation-fixtures.js';

t.test('suspend longer than the TTL: renewed at once on wake (jump)', async (t) => {
  const { clock, issuer, manager, events } = setup();
  manager.add('node', issuer.cert(), issuer.renewer('node'));
  manager.add('web', issuer.cert(), issuer.renewer('web'));
  manager.add('db', issuer.cert(), issuer.renewer('db'));
  const woke = clock.now() + 3 * HOUR;
  clock.jump(3 * HOUR);
  t.same(issuer.calls.map((c) => c.name).sort(), ['db', 'node', 'web'], 'all three renewals started on wake');
  t.ok(
    issuer.calls.every((c) => c.at === woke),
    'at the wake-up time',
  );
  await flush();
  t.equal(events.length, 3);
  t.ok(
    manager.status().every((s) => s.notAfter > woke && s.nextRenewalAt > woke),
    'new certificates, next renewal in the future',
  );
  t.equal(clock.pending(), 4, 'three renewal timers and the watchdog, no duplicates');
  manager.stop();
});

t.test('suspend with timers frozen (monotonic clock): the watchdog renews within 10 s of waking', async (t) => {
  const { clock, issuer, manager, events, lines } = setup();
  const first = issuer.cert();
  manager.add('node', first, issuer.renewer('node'));
  clock.advance(5 * MIN);
  clock.suspend(2 * HOUR); // wall clock now past notAfter; the renewal timer would fire 25 min from now
  t.ok(clock.now() > first.notAfter, 'expired while asleep');
  clock.advance(10 * SEC);
  t.equal(issuer.calls.length, 1, 'renewed by the watchdog tick, not 25 minutes later');
  await flush();
  t.equal(events.length, 1);
  t.ok(
    lines.some((l) => l.includes('timers fired late')),
    'the late wake-up is logged',
  );
  clock.advance(25 * MIN);
  await flush();
  t.equal(issuer.calls.length, 1, 'the stale timer did not renew a second time');
  manager.stop();
});

t.test('remove and stop cancel every timer; late answers are dropped', async (t) => {
  const { clock, issuer, manager, events } = setup();
  manager.add('node', issuer.cert(), issuer.renewer('node'));
  manager.add('web', issuer.cert(), issuer.renewer('web'));
  t.equal(clock.pending(), 3);
  t.throws(() => manager.add('web', issuer.cert(), issuer.renewer('web')), { code: 'MESH_E_INTERNAL' });
  t.equal(manager.remove('web'), true);
  t.equal(manager.remove('web'), false);
  t.equal(clock.pending(), 2);
  t.same(
    manager.status().map((s) => s.name),
    ['node'],
  );
  t.equal(manager.remove('node'), true);
  t.equal(clock.pending(), 0, 'no credentials, no watchdog');

  let release: (c: PemCert) => void = () => {};
  manager.add('slow', issuer.cert(), () => new Promise<PemCert>((resolve) => (release = resolve)));
  clock.advance(30 * MIN);
  manager.stop();
  t.equal(clock.pending(), 0, 'stop cancels everything');
  release(issuer.cert());
  await flush();
  t.equal(events.length, 0, 'a renewal that ends after stop is not delivered');
  t.equal(clock.pending(), 0, 'and schedules nothing');
  t.throws(() => manager.add('late', issuer.cert(), issuer.renewer('late')), { code: 'MESH_E_INTERNAL' });
});
