/** A clock that moves only when the test says so. */
import type { Clock, TimerHandle } from '../../lib/clock.js';

interface Timer {
  at: number;
  fn: () => void;
  cancelled: boolean;
}

export class FakeClock implements Clock {
  private current: number;
  private timers: Timer[] = [];

  constructor(start = Date.UTC(2026, 10, 22, 12, 0, 0)) {
    this.current = start;
  }

  now(): number {
    return this.current;
  }

  setTimer(ms: number, fn: () => void): TimerHandle {
    const timer: Timer = { at: this.current + Math.max(0, ms), fn, cancelled: false };
    this.timers.push(timer);
    return { cancel: () => (timer.cancelled = true) };
  }

  /** Moves time forward, firing due timers in order. */
  advance(ms: number): void {
    const target = this.current + ms;
    for (;;) {
      const due = this.timers.filter((x) => !x.cancelled && x.at <= target).sort((a, b) => a.at - b.at)[0];
      if (due === undefined) break;
      this.current = due.at;
      due.cancelled = true;
      due.fn();
    }
    this.timers = this.timers.filter((x) => !x.cancelled);
    this.current = target;
  }

  /**
   * Imitates a suspended host waking up: time moves forward by ms at once, with
   * no timer firing on the way; then the timers already due fire, oldest first,
   * all seeing the new time (as late timers do after a real suspend).
   */
  jump(ms: number): void {
    this.current += ms;
    for (;;) {
      const due = this.timers.filter((x) => !x.cancelled && x.at <= this.current).sort((a, b) => a.at - b.at)[0];
      if (due === undefined) break;
      due.cancelled = true;
      due.fn();
    }
    this.timers = this.timers.filter((x) => !x.cancelled);
  }

  /**
   * Imitates a suspend the way Node's timers see it: the wall clock moves by ms
   * but the monotonic clock the timers follow stands still, so every pending
   * timer is pushed back by ms and nothing fires. Follow with advance().
   */
  suspend(ms: number): void {
    this.current += ms;
    for (const timer of this.timers) timer.at += ms;
  }

  pending(): number {
    return this.timers.filter((x) => !x.cancelled).length;
  }

  /**
   * Lets the promise callbacks already queued run, and those they queue, but
   * no time passes. Deterministic only when the code under test does no real
   * I/O (its fakes answer with promises), which is what unit tests do.
   */
  static async flush(): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve));
  }

  /** Like advance(), but lets promise callbacks run before each due timer and at the end (sinon's tickAsync). */
  async advanceAsync(ms: number): Promise<void> {
    const target = this.current + ms;
    for (;;) {
      await FakeClock.flush();
      const due = this.earliest();
      if (due === undefined || due.at > target) break;
      this.current = due.at;
      due.cancelled = true;
      due.fn();
    }
    this.timers = this.timers.filter((x) => !x.cancelled);
    this.current = target;
    await FakeClock.flush();
  }

  /**
   * Moves time from timer to timer, letting promise callbacks run in between,
   * until the promise settles; returns (or throws) what it settles with. Fails
   * when the promise waits for something no timer of this clock will bring,
   * or does not settle within limitMs of clock time.
   */
  async runUntil<T>(promise: Promise<T>, limitMs = 10 * 60_000): Promise<T> {
    let settled = false;
    const watched = promise.finally(() => {
      settled = true;
    });
    watched.catch(() => {});
    const end = this.current + limitMs;
    for (;;) {
      await FakeClock.flush();
      if (settled) return watched;
      const due = this.earliest();
      if (due === undefined) throw new Error('runUntil: the promise waits for something other than this clock');
      if (due.at > end) throw new Error(`runUntil: not settled within ${limitMs} ms of clock time`);
      this.advance(due.at - this.current);
    }
  }

  private earliest(): Timer | undefined {
    return this.timers.filter((x) => !x.cancelled).sort((a, b) => a.at - b.at)[0];
  }
}
