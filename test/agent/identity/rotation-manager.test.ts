import t from 'tap';
import { rotateAt } from '../../../agent/identity/rotate-at.js';
import { retryDelay } from '../../../agent/identity/rotation-manager.js';
import { flush } from '../../support/flush.js';
import { HOUR, MIN, type PemCert, SEC, setup } from './rotation-fixtures.js';

t.test('renews at 50% of the lifetime and delivers the new certificate to the listener', async (t) => {
  const { clock, issuer, manager, events } = setup();
  const first = issuer.cert();
  manager.add('node', first, issuer.renewer('node'));
  t.equal(manager.status()[0]?.nextRenewalAt, first.notBefore + 30 * MIN);
  t.equal(clock.pending(), 2, 'one renewal timer and the watchdog');
  clock.advance(30 * MIN - 1);
  await flush();
  t.equal(issuer.calls.length, 0, 'nothing before the renewal time (watchdog ticks do not renew early)');
  clock.advance(1);
  await flush();
  t.same(issuer.calls, [{ name: 'node', at: first.notBefore + 30 * MIN }]);
  t.equal(events.length, 1);
  t.equal(events[0]?.name, 'node');
  t.equal(events[0]?.cert.pem, 'PEM 102', 'the listener gets the whole new certificate');
  const second = events[0]?.cert as PemCert;
  t.same(manager.status(), [
    { name: 'node', serial: second.serial, notAfter: second.notAfter, nextRenewalAt: rotateAt(second, 0.5, 0.1, () => 0.5), failures: 0 },
  ]);
  clock.advance(30 * MIN);
  await flush();
  t.equal(events.length, 2, 'and again at half of the new certificate');
  t.equal(clock.pending(), 2, 'still one timer per credential plus the watchdog');
  manager.stop();
});

t.test('jitter spreads credentials added at once', async (t) => {
  let i = 0;
  const draws = [0, 0.25, 1];
  const { issuer, manager } = setup({ random: () => draws[i++ % 3] ?? 0 });
  const cert = issuer.cert();
  for (const name of ['a', 'b', 'c']) manager.add(name, cert, issuer.renewer(name));
  t.same(
    manager.status().map((s) => (s.nextRenewalAt - cert.notBefore) / MIN),
    [24, 27, 36],
  );
  manager.stop();
});

t.test('retryDelay: 1 s doubling to 60 s with equal jitter, paced by the time left', async (t) => {
  const policy = { initialMs: SEC, maxMs: 60 * SEC };
  const top = (n: number) => retryDelay(policy, n, Number.POSITIVE_INFINITY, () => 1);
  t.same(
    [1, 2, 3, 4, 5, 6, 7, 8, 50].map(top),
    [1, 2, 4, 8, 16, 32, 60, 60, 60].map((s) => s * SEC),
  );
  t.equal(
    retryDelay(policy, 3, Number.POSITIVE_INFINITY, () => 0),
    2 * SEC,
    'half fixed, half random',
  );
  t.equal(
    retryDelay(policy, 7, 30 * SEC, () => 1),
    15 * SEC,
    'never later than half the time left',
  );
  t.equal(
    retryDelay(policy, 7, 500, () => 1),
    SEC,
    'with a 1 s floor',
  );
  t.equal(
    retryDelay(policy, 9, -5 * MIN, () => 1),
    60 * SEC,
    'past expiry: the plain backoff',
  );
});

t.test('failed renewals back off to the cap, keep going past expiry, and success resets', async (t) => {
  const { clock, issuer, manager, events, lines } = setup({ ttl: 10 * MIN, random: () => 1 });
  const first = issuer.cert();
  manager.add('node', first, issuer.renewer('node'));
  issuer.down = true;
  clock.advance(6 * MIN); // 60% with random 1
  await flush();
  t.equal(issuer.calls.length, 1);
  for (let n = 0; n < 24; n++) {
    const next = manager.status()[0]?.nextRenewalAt ?? 0;
    clock.advance(next - clock.now());
    await flush();
  }
  const gaps = issuer.calls.slice(1).map((c, k) => ((c.at - (issuer.calls[k]?.at ?? 0)) / SEC).toFixed(0));
  // 4 min left at the first failure: 1, 2, 4, 8, 16, 32 s, then 60 s until the pacing
  // (half of what is left, >= 1 s) takes over near expiry; past expiry 60 s each.
  t.same(gaps.slice(0, 7), ['1', '2', '4', '8', '16', '32', '60']);
  t.ok(
    gaps.every((g) => Number(g) <= 60),
    `never more than 60 s apart: ${gaps.join(' ')}`,
  );
  t.ok(
    issuer.calls.some((c) => c.at > first.notAfter),
    'still retrying after expiry',
  );
  t.same(gaps.slice(-3), ['60', '60', '60'], 'past expiry the cap holds');
  t.comment(`retry gaps (s): ${gaps.join(' ')}`);
  const failing = manager.status()[0];
  t.equal(failing?.failures, 25);
  t.equal(failing?.lastError, 'MESH_E_CONTROLPLANE_UNAVAILABLE: connection refused');
  t.ok(
    lines.some((l) => l.includes('credential expired and renewal keeps failing')),
    'an expired credential is logged as an error',
  );
  t.equal(events.length, 0);

  issuer.down = false;
  clock.advance(60 * SEC);
  await flush();
  t.equal(events.length, 1, 'renewed once the control plane is back');
  const now = manager.status()[0];
  t.equal(now?.failures, 0, 'failures reset');
  t.notOk(now && 'lastError' in now, 'no error shown any more');
  t.equal(
    now?.nextRenewalAt,
    rotateAt(events[0]?.cert as PemCert, 0.5, 0.1, () => 1),
    'back on the normal schedule',
  );
  manager.stop();
  t.equal(clock.pending(), 0);
});

t.test('listeners: a failing one does not stop the others; unsubscribe works', async (t) => {
  const { clock, issuer, manager, events } = setup();
  manager.onRenewed(() => {
    throw new Error('envoy push failed');
  });
  const extra: string[] = [];
  const off = manager.onRenewed((e) => extra.push(e.cert.serial));
  manager.add('node', issuer.cert(), issuer.renewer('node'));
  clock.advance(30 * MIN);
  await flush();
  t.equal(events.length, 1);
  t.equal(extra.length, 1);
  off();
  clock.advance(30 * MIN);
  await flush();
  t.equal(events.length, 2);
  t.equal(extra.length, 1, 'unsubscribed');
  manager.stop();
});

t.test('a renewal answer that is already expired counts as a failure', async (t) => {
  const { clock, issuer, manager, events } = setup();
  const stale = { notBefore: clock.now() - 2 * HOUR, notAfter: clock.now() - HOUR, serial: 'OLD', pem: 'x' };
  manager.add('node', issuer.cert(), async () => stale);
  clock.advance(30 * MIN);
  await flush();
  t.equal(events.length, 0);
  t.match(manager.status()[0], { failures: 1, lastError: /^MESH_E_CERT_INVALID: .*check the clocks/ });
  manager.stop();
});

t.test('retryFailed renews at once only the credentials whose last attempt failed', async (t) => {
  const { clock, issuer, manager, events } = setup();
  const cert = issuer.cert();
  manager.add('a', cert, issuer.renewer('a'));
  manager.add('b', { ...cert, notBefore: cert.notBefore + 10 * MIN, notAfter: cert.notAfter + 10 * MIN }, issuer.renewer('b'));
  issuer.down = true;
  clock.advance(30 * MIN);
  await flush();
  t.match(manager.status(), [
    { name: 'a', failures: 1 },
    { name: 'b', failures: 0 },
  ]);
  const retryAt = manager.status()[0]?.nextRenewalAt ?? 0;
  t.ok(retryAt > clock.now(), 'a waits for its backoff');
  issuer.down = false;
  manager.retryFailed();
  await flush();
  t.same(
    issuer.calls.map((c) => c.name),
    ['a', 'a'],
    'a is retried at once; b, not due and not failing, is left alone',
  );
  t.match(manager.status(), [
    { name: 'a', failures: 0 },
    { name: 'b', failures: 0 },
  ]);
  t.equal(events.length, 1);
  manager.retryFailed();
  await flush();
  t.equal(issuer.calls.length, 2, 'nothing failing: nothing to do');
  manager.stop();
});

t.test('onRenewalFailed is told of each failed renewal, not of successes (metrics count them)', async (t) => {
  const failed: string[] = [];
  const { clock, issuer, manager, events } = setup({ ttl: 10 * MIN, random: () => 1, onRenewalFailed: (name) => failed.push(name) });
  manager.add('node', issuer.cert(), issuer.renewer('node'));
  issuer.down = true;
  clock.advance(6 * MIN);
  await flush();
  clock.advance((manager.status()[0]?.nextRenewalAt ?? 0) - clock.now());
  await flush();
  t.same(failed, ['node', 'node'], 'two failed attempts');
  issuer.down = false;
  clock.advance((manager.status()[0]?.nextRenewalAt ?? 0) - clock.now());
  await flush();
  t.equal(events.length, 1, 'then a renewal');
  t.same(failed, ['node', 'node'], 'which is not a failure');
  manager.stop();
});
