/**
 * Runs each workload's check on its interval (catalog mode) and reports
 * status changes. The runner is injected so tests drive it with a fake clock.
 */
import type { Clock, TimerHandle } from '../../lib/clock.js';
import type { CheckResult } from './health-check.js';
import type { Workload, WorkloadCheck } from './workload.js';

export type CheckRunner = (check: WorkloadCheck) => Promise<CheckResult>;

export interface HealthMonitor {
  /** Sets the workloads to check; new or changed checks start, removed ones stop. */
  set(workloads: readonly Workload[]): void;
  /** Last result per workload name (critical until the first run). */
  results(): ReadonlyMap<string, CheckResult>;
  stop(): void;
}

interface Entry {
  check: WorkloadCheck;
  timer: TimerHandle | undefined;
  stopped: boolean;
}

const INITIAL: CheckResult = Object.freeze({ status: 'critical', output: 'not checked yet' });

export function createHealthMonitor(
  clock: Clock,
  runner: CheckRunner,
  onChange: (name: string, result: CheckResult) => void,
): HealthMonitor {
  const entries = new Map<string, Entry>();
  const last = new Map<string, CheckResult>();

  const schedule = (name: string, entry: Entry, delay: number) => {
    entry.timer = clock.setTimer(delay, () => {
      entry.timer = undefined;
      void runner(entry.check).then((result) => {
        if (entry.stopped) return;
        const before = last.get(name);
        last.set(name, result);
        if (before?.status !== result.status) onChange(name, result);
        schedule(name, entry, entry.check.intervalMs);
      });
    });
  };

  const stopEntry = (name: string) => {
    const entry = entries.get(name);
    if (entry === undefined) return;
    entry.stopped = true;
    entry.timer?.cancel();
    entries.delete(name);
    last.delete(name);
  };

  return {
    set(workloads) {
      const wanted = new Map(workloads.filter((w) => w.check !== undefined).map((w) => [w.name, w.check as WorkloadCheck]));
      for (const name of [...entries.keys()]) {
        if (JSON.stringify(wanted.get(name)) !== JSON.stringify(entries.get(name)?.check)) stopEntry(name);
      }
      for (const [name, check] of wanted) {
        if (entries.has(name)) continue;
        const entry: Entry = { check, timer: undefined, stopped: false };
        entries.set(name, entry);
        last.set(name, INITIAL);
        schedule(name, entry, 0);
      }
    },
    results: () => last,
    stop() {
      for (const name of [...entries.keys()]) stopEntry(name);
    },
  };
}
