import t from 'tap';
import { RateLimiter } from '../../../controlplane/attestation/rate-limiter.js';
import { FakeClock } from '../../fakes/clock.js';

const takeN = (limiter: RateLimiter, key: string, n: number) => Array.from({ length: n }, () => limiter.take(key));

t.test('a burst, then refusal until tokens refill', async (t) => {
  const clock = new FakeClock();
  const limiter = new RateLimiter({ perSecond: 2, burst: 3 }, clock);
  t.same(takeN(limiter, 'vm1', 4), [true, true, true, false], 'burst of 3');
  clock.advance(499);
  t.notOk(limiter.take('vm1'), 'just under one token after 499 ms');
  clock.advance(1);
  t.ok(limiter.take('vm1'), 'one token after 500 ms at 2/s');
  t.notOk(limiter.take('vm1'));
  clock.advance(1000);
  t.same(takeN(limiter, 'vm1', 3), [true, true, false], 'two tokens after a second');
});

t.test('refill is capped at the burst; keys are independent', async (t) => {
  const clock = new FakeClock();
  const limiter = new RateLimiter({ perSecond: 10, burst: 2 }, clock);
  t.same(takeN(limiter, 'a', 3), [true, true, false]);
  t.same(takeN(limiter, 'b', 2), [true, true], 'another key has its own bucket');
  clock.advance(3_600_000);
  t.same(takeN(limiter, 'a', 3), [true, true, false], 'an hour later: still only the burst');
});

t.test('fractional rates', async (t) => {
  const clock = new FakeClock();
  const limiter = new RateLimiter({ perSecond: 0.5, burst: 1 }, clock);
  t.ok(limiter.take('x'));
  clock.advance(1000);
  t.notOk(limiter.take('x'), 'half a token');
  clock.advance(1000);
  t.ok(limiter.take('x'), 'a whole token after two seconds');
});
