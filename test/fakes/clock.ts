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
}
