/**
 * The journal of the agent's side effects. Every effect is recorded before it
 * is made, together with how to undo it; unwind() undoes everything recorded,
 * newest first, whatever phase start-up had reached. So a stop at any moment
 * (a signal during start-up, a failed start) leaves exactly nothing behind.
 *
 * Two forms:
 * - record(name, undo): the undo is safe at any time, also while the effect
 *   is still being made or if it never was (stopping a supervisor, closing a
 *   watcher, deregistering what a registrar attempted).
 * - effect(name, make, undo): the undo needs the made value (a listening
 *   server); unwind waits for make to settle and undoes only what was made.
 *
 * After unwind() starts, nothing new may be recorded: record and effect throw
 * MESH_E_STOPPING, which ends a start-up that is still running.
 */
import { MeshError } from './errors.js';
import type { Logger } from './logger.js';

interface Entry {
  readonly name: string;
  /** Resolves when the effect has settled (made or failed); undo() then runs. */
  readonly settled: Promise<void>;
  readonly undo: () => Promise<void> | void;
}

export interface SideEffectSummary {
  readonly name: string;
  readonly state: 'recorded' | 'undone' | 'undo-failed';
}

export class SideEffects {
  private readonly entries: Entry[] = [];
  private readonly states = new Map<Entry, SideEffectSummary['state']>();
  private unwinding: Promise<void> | undefined;

  constructor(private readonly log: Logger) {}

  /** True once unwind() was called: start-up must not go on. */
  get stopping(): boolean {
    return this.unwinding !== undefined;
  }

  /** Throws MESH_E_STOPPING when the journal is unwinding (call between start-up steps). */
  check(what: string): void {
    if (this.stopping) throw new MeshError('MESH_E_STOPPING', `stopped before ${what}`);
  }

  /** Records an undo that is safe at any time; call it BEFORE making the effect. */
  record(name: string, undo: () => Promise<void> | void): void {
    this.check(name);
    this.push({ name, settled: Promise.resolve(), undo });
  }

  /** Records, then makes an effect whose undo needs the value made. */
  async effect<T>(name: string, make: () => Promise<T>, undo: (value: T) => Promise<void> | void): Promise<T> {
    this.check(name);
    let made: { value: T } | undefined;
    let settle: () => void = () => {};
    const settled = new Promise<void>((resolve) => {
      settle = resolve;
    });
    this.push({
      name,
      settled,
      undo: () => (made === undefined ? undefined : undo(made.value)),
    });
    try {
      const value = await make();
      made = { value };
      return value;
    } finally {
      settle();
    }
  }

  /** Undoes every recorded effect, newest first; each failure is logged and the rest still run. Idempotent. */
  unwind(): Promise<void> {
    this.unwinding ??= (async () => {
      for (const entry of [...this.entries].reverse()) {
        await entry.settled;
        try {
          await entry.undo();
          this.states.set(entry, 'undone');
        } catch (err) {
          this.states.set(entry, 'undo-failed');
          this.log.error('could not undo a side effect on stop', { effect: entry.name, error: err });
        }
      }
    })();
    return this.unwinding;
  }

  /** What is recorded and whether it was undone (status, tests). */
  summary(): SideEffectSummary[] {
    return this.entries.map((e) => ({ name: e.name, state: this.states.get(e) ?? 'recorded' }));
  }

  private push(entry: Entry): void {
    this.entries.push(entry);
    this.states.set(entry, 'recorded');
  }
}
