/**
 * stop(), pure: from any phase into `draining`, which lists everything that
 * exists at that moment (processes, a spawn or a validation under way, a
 * drain), and out of it into `stopped` once all of it is gone. A serving
 * epoch with an admin API is drained first (listeners close gracefully, open
 * connections get up to the drain time); everything else is terminated at
 * once (SIGTERM, SIGKILL after 5 s). A spawn under way is aborted, or its
 * process terminated as soon as it is reported. Envoy's shared memory is
 * removed last, when no process of the base id is left.
 */
import {
  applied,
  type Effect,
  type EventOf,
  enter,
  type ProcRef,
  type StateIn,
  type Step,
  type SupervisorState,
} from './supervisor-state.js';

type Draining = StateIn<'draining'>;

export interface StopParts {
  /** The serving epoch: its exit is the one status reports. */
  current?: ProcRef;
  adminAddress?: string;
  /** Live processes of the phase being left (the retiring ones are added). */
  alive: readonly ProcRef[];
  launching?: number;
  validating?: number;
  /** Drain `current` through its admin API before signalling. */
  drain: boolean;
  /** Answers to the start or reload the stop cuts short, a timer to cancel. */
  extra?: readonly Effect[];
}

export function beginStop(state: SupervisorState, parts: StopParts): Step {
  const procs = [...parts.alive, ...state.retiring.filter((r) => !parts.alive.some((p) => p.id === r.id))];
  const drainIt = parts.drain && parts.current !== undefined && parts.adminAddress !== undefined;
  const effects: Effect[] = [...(parts.extra ?? [])];
  if (parts.launching !== undefined) effects.push({ kind: 'abort-spawn', id: parts.launching });
  if (parts.validating !== undefined) effects.push({ kind: 'abort-validate', id: parts.validating });
  if (drainIt && parts.current && parts.adminAddress) {
    effects.push({ kind: 'drain', id: parts.current.id, address: parts.adminAddress });
  } else if (procs.length > 0) {
    effects.push({ kind: 'terminate', ids: procs.map((p) => p.id) });
  }
  const next = enter(
    state,
    {
      phase: 'draining',
      procs,
      removing: false,
      ...(parts.current ? { current: parts.current } : {}),
      ...(parts.adminAddress ? { adminAddress: parts.adminAddress } : {}),
      ...(parts.launching !== undefined ? { launching: parts.launching } : {}),
      ...(parts.validating !== undefined ? { validating: parts.validating } : {}),
      ...(drainIt && parts.current ? { draining: parts.current.id } : {}),
    },
    { retiring: [] },
  ) as Draining;
  return finishIfDone(next, effects);
}

/** Nothing left: remove the shared memory, then `stopped`. */
function finishIfDone(state: Draining, effects: Effect[]): Step {
  const busy = state.procs.length > 0 || state.launching !== undefined || state.validating !== undefined || state.draining !== undefined;
  if (busy || state.removing) return applied(state, effects);
  return applied({ ...state, removing: true }, [...effects, { kind: 'remove-shm' }]);
}

function without<K extends 'launching' | 'validating' | 'draining'>(state: Draining, key: K): Draining {
  const { [key]: _gone, ...rest } = state;
  return rest as Draining;
}

export const drainingOn = {
  spawned(s: Draining, e: EventOf<'spawned'>): Step {
    const proc: ProcRef = {
      id: e.id,
      epoch: -1,
      startedAt: e.at,
      ...(e.pid === undefined ? {} : { pid: e.pid }),
      ...(e.version === undefined ? {} : { version: e.version }),
    };
    return applied({ ...without(s, 'launching'), procs: [...s.procs, proc] }, [{ kind: 'terminate', ids: [e.id] }]);
  },
  spawnFailed(s: Draining): Step {
    return finishIfDone(without(s, 'launching'), []);
  },
  exited(s: Draining, e: EventOf<'exited'>): Step {
    const exit = { code: e.code, signal: e.signal, at: e.at };
    const next: Draining = { ...s, procs: s.procs.filter((p) => p.id !== e.id), ...(s.current?.id === e.id ? { lastExit: exit } : {}) };
    return finishIfDone(next, []);
  },
  validated(s: Draining): Step {
    return finishIfDone(without(s, 'validating'), []);
  },
  drained(s: Draining): Step {
    const ids = s.procs.map((p) => p.id);
    return finishIfDone(without(s, 'draining'), ids.length > 0 ? [{ kind: 'terminate', ids }] : []);
  },
  shmRemoved(s: Draining): Step {
    return applied(enter(s, { phase: 'stopped' }), [
      { kind: 'log', level: 'info', message: 'Envoy stopped' },
      { kind: 'notify', event: 'stopped' },
      { kind: 'settle-stop' },
    ]);
  },
};

/** Whether the draining phase is waiting for this id (the table uses it to tell stale events). */
export function drainingWaitsFor(s: Draining, kind: 'spawn' | 'process' | 'validation' | 'drain', id: number): boolean {
  if (kind === 'spawn') return s.launching === id;
  if (kind === 'process') return s.procs.some((p) => p.id === id);
  if (kind === 'validation') return s.validating === id;
  return s.draining === id;
}
