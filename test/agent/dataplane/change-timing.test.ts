import t from 'tap';
import { ChangeTimer } from '../../../agent/dataplane/change-timing.js';
import { FakeClock } from '../../fakes/clock.js';

t.test('a view timed from its arrival to the rebuild, the push, the snapshot served and the ACK', async (t) => {
  const clock = new FakeClock();
  let now = 100;
  const timer = new ChangeTimer(clock, () => now);
  t.equal(timer.status(), undefined, 'nothing before the first view');
  timer.pushed();
  timer.acked();
  t.equal(timer.status(), undefined, 'pushes and ACKs before any view count for nothing');
  timer.viewArrived(7);
  now += 0.5;
  timer.pushed();
  t.same(timer.status(), { viewVersion: 7, at: clock.now() }, 'a push before the rebuild started is not this view');
  timer.buildStarted();
  now += 2.25;
  timer.pushed();
  now += 0.25;
  timer.pushed();
  timer.built(true);
  now += 4;
  timer.acked();
  now += 1;
  timer.acked();
  t.same(
    timer.status(),
    { viewVersion: 7, at: clock.now(), startedMs: 0.5, pushedMs: 2.75, servedMs: 3, ackedMs: 7 },
    'each step once: the first',
  );
  clock.advance(1000);
  timer.viewArrived(8);
  timer.buildStarted();
  now += 1;
  timer.built(false);
  timer.built(true);
  timer.acked();
  t.same(timer.status(), { viewVersion: 8, at: clock.now(), startedMs: 0, unchanged: true }, 'nothing new for Envoy: no push, no ACK');
});
