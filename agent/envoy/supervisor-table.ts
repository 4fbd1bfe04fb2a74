/**
 * The supervisor's state-transition table: for every phase and every event,
 * either a handler, or an explicit "ignored" (a stale or irrelevant event, the
 * state does not change) or "rejected" (a call this phase does not allow; the
 * caller gets an error). The table's type makes every cell mandatory, so a new
 * phase or event does not compile until each combination is decided.
 * `transition(state, event)` is pure: the shell runs the effects it returns.
 * A handler that returns undefined did not recognise the event's id (stale);
 * an unknown process reported as spawned is killed rather than ignored.
 */
import { beginReload, coldRestartingOn, coldStartIfClear, hotRestartingOn, keepForNextStart, validatingOn } from './hot-restart.js';
import { crash, restartIfDue } from './restart-policy.js';
import { dropRetired, startFresh, startingOn } from './start-sequence.js';
import { beginStop, drainingOn, drainingWaitsFor } from './stop-sequence.js';
import {
  applied,
  type Effect,
  type EventKind,
  type EventOf,
  type Phase,
  type StateIn,
  type Step,
  type SupervisorEvent,
  type SupervisorState,
} from './supervisor-state.js';

export interface Ignore {
  readonly ignore: string;
}
export interface Reject {
  readonly reject: string;
}
type Handler<P extends Phase, K extends EventKind> = (s: StateIn<P>, e: EventOf<K>) => Step | undefined | 'busy';
export type Cell<P extends Phase, K extends EventKind> = Handler<P, K> | Ignore | Reject;
export type Row<P extends Phase> = { readonly [K in EventKind]: Cell<P, K> };

const ignore = (why: string): Ignore => ({ ignore: why });
const reject = (why: string): Reject => ({ reject: why });
const ok: Effect = { kind: 'settle-start' };
const alreadyStarted = (s: SupervisorState): Step => applied(s, [ok]);
const stopped = (what: string): Effect => ({
  kind: 'settle-reload',
  failure: { code: 'MESH_E_ENVOY_RELOAD', message: `Envoy was stopped during the ${what}; the next start uses the new settings` },
});

/** Old epochs exit in any phase: drop them, then let the phase go on if it waited for that (`then`). */
function retiredOr<P extends Phase>(then?: (s: StateIn<P>) => Step): Handler<P, 'exited'> {
  return (s, e) => {
    const dropped = dropRetired(s, e);
    if (dropped === undefined) return undefined;
    const next = then ? then(dropped.state) : applied(dropped.state);
    return applied(next.state, [...dropped.effects, ...next.effects]);
  };
}

function exitedThen<P extends Phase>(own: Handler<P, 'exited'>, then?: (s: StateIn<P>) => Step): Handler<P, 'exited'> {
  const retired = retiredOr(then);
  return (s, e) => own(s, e) ?? retired(s, e);
}

const stale = ignore('stale: not an operation of this phase');
const noProcess = ignore('no Envoy is being started or confirmed in this phase');
const notValidating = ignore('no validation is under way in this phase');
const notDraining = ignore('no drain is under way in this phase');
const noTimer = ignore('no backoff timer is armed in this phase');
const notProbing = ignore('no admin probe is under way in this phase');
const notRemoving = ignore('the shared memory is only awaited while stopping');
const busy = reject('another reload is under way');

/** A process nobody waits for: kill it rather than leave it running. */
function orphan(s: SupervisorState, e: EventOf<'spawned'>): Step {
  return applied(s, [
    { kind: 'log', level: 'warn', message: 'an Envoy process nobody waits for was spawned; killing it', fields: { pid: e.pid } },
    { kind: 'kill', id: e.id },
  ]);
}

export const TABLE: { readonly [P in Phase]: Row<P> } = {
  stopped: {
    start: startFresh,
    stop: (s) => applied(s, [{ kind: 'settle-stop' }]),
    reload: (s, e) => keepForNextStart(s, e.next, 'Envoy is stopped'),
    spawned: orphan,
    'spawn-failed': stale,
    'admin-ready': noProcess,
    'admin-timeout': noProcess,
    exited: retiredOr(),
    validated: notValidating,
    drained: notDraining,
    'backoff-over': noTimer,
    'admin-probed': notProbing,
    'shm-removed': ignore('the removal after a failed start; nobody waits for it'),
  },
  starting: {
    start: startingOn.start,
    stop: startingOn.stop,
    reload: startingOn.reload,
    spawned: startingOn.spawned,
    'spawn-failed': startingOn.spawnFailed,
    'admin-ready': startingOn.adminReady,
    'admin-timeout': startingOn.adminTimeout,
    exited: exitedThen(startingOn.exited),
    validated: notValidating,
    drained: notDraining,
    'backoff-over': noTimer,
    'admin-probed': notProbing,
    'shm-removed': notRemoving,
  },
  running: {
    start: alreadyStarted,
    stop: (s) =>
      beginStop(s, { current: s.proc, ...(s.adminAddress ? { adminAddress: s.adminAddress } : {}), alive: [s.proc], drain: true }),
    reload: (s, e) => beginReload(s, e.next),
    spawned: orphan,
    'spawn-failed': stale,
    'admin-ready': stale,
    'admin-timeout': stale,
    exited: exitedThen((s, e) => (e.id === s.proc.id ? crash(s, s.proc, { code: e.code, signal: e.signal, at: e.at }) : undefined)),
    validated: notValidating,
    drained: notDraining,
    'backoff-over': noTimer,
    'admin-probed': notProbing,
    'shm-removed': notRemoving,
  },
  validating: {
    start: alreadyStarted,
    stop: (s) =>
      beginStop(
        { ...s, settings: s.next },
        s.procExit
          ? { alive: [], validating: s.id, drain: false, extra: [stopped('validation')] }
          : {
              current: s.proc,
              ...(s.adminAddress ? { adminAddress: s.adminAddress } : {}),
              alive: [s.proc],
              validating: s.id,
              drain: true,
              extra: [stopped('validation')],
            },
      ),
    reload: busy,
    spawned: orphan,
    'spawn-failed': stale,
    'admin-ready': stale,
    'admin-timeout': stale,
    exited: exitedThen(validatingOn.exited),
    validated: validatingOn.validated,
    drained: notDraining,
    'backoff-over': noTimer,
    'admin-probed': notProbing,
    'shm-removed': notRemoving,
  },
  'hot-restarting': {
    start: alreadyStarted,
    stop: (s) => {
      const alive = [...(s.parentExit ? [] : [s.parent]), ...(s.child ? [s.child] : [])];
      const current = s.parentExit ? {} : { current: s.parent };
      return beginStop(
        { ...s, settings: s.next },
        { ...current, alive, ...(s.launching ? { launching: s.id } : {}), drain: false, extra: [stopped('hot restart')] },
      );
    },
    reload: busy,
    spawned: hotRestartingOn.spawned,
    'spawn-failed': hotRestartingOn.spawnFailed,
    'admin-ready': hotRestartingOn.adminReady,
    'admin-timeout': hotRestartingOn.adminTimeout,
    exited: exitedThen(hotRestartingOn.exited),
    validated: notValidating,
    drained: notDraining,
    'backoff-over': noTimer,
    'admin-probed': hotRestartingOn.adminProbed,
    'shm-removed': notRemoving,
  },
  'cold-restarting': {
    start: alreadyStarted,
    stop: (s) => beginStop({ ...s, settings: s.next }, { alive: s.old ? [s.old] : [], drain: false, extra: [stopped('cold restart')] }),
    reload: busy,
    spawned: orphan,
    'spawn-failed': stale,
    'admin-ready': stale,
    'admin-timeout': stale,
    exited: exitedThen(coldRestartingOn.exited, coldStartIfClear),
    validated: notValidating,
    drained: notDraining,
    'backoff-over': noTimer,
    'admin-probed': notProbing,
    'shm-removed': notRemoving,
  },
  backoff: {
    start: alreadyStarted,
    stop: (s) => beginStop(s, { alive: [], drain: false, extra: [{ kind: 'cancel-timer', timer: s.timer }] }),
    reload: (s, e) => keepForNextStart(s, e.next, 'Envoy waits to restart'),
    spawned: orphan,
    'spawn-failed': stale,
    'admin-ready': stale,
    'admin-timeout': stale,
    exited: retiredOr(restartIfDue),
    validated: notValidating,
    drained: notDraining,
    'backoff-over': (s, e) => (e.timer === s.timer && !s.due ? restartIfDue({ ...s, due: true }) : undefined),
    'admin-probed': notProbing,
    'shm-removed': notRemoving,
  },
  draining: {
    start: reject('Envoy is stopping; start it again once stop() resolved'),
    stop: (s) => applied(s),
    reload: (s, e) => keepForNextStart(s, e.next, 'Envoy is stopping'),
    spawned: (s, e) => (drainingWaitsFor(s, 'spawn', e.id) ? drainingOn.spawned(s, e) : undefined),
    'spawn-failed': (s, e) => (drainingWaitsFor(s, 'spawn', e.id) ? drainingOn.spawnFailed(s) : undefined),
    'admin-ready': ignore('stopping: the epoch is being stopped'),
    'admin-timeout': ignore('stopping: the epoch is being stopped'),
    exited: (s, e) => (drainingWaitsFor(s, 'process', e.id) ? drainingOn.exited(s, e) : undefined),
    validated: (s, e) => (drainingWaitsFor(s, 'validation', e.id) ? drainingOn.validated(s) : undefined),
    drained: (s, e) => (drainingWaitsFor(s, 'drain', e.id) ? drainingOn.drained(s) : undefined),
    'backoff-over': ignore('stopping: the timer was cancelled'),
    'admin-probed': notProbing,
    'shm-removed': (s) => (s.removing ? drainingOn.shmRemoved(s) : undefined),
  },
};

export function transition(state: SupervisorState, event: SupervisorEvent): Step {
  const cell = (TABLE[state.phase] as Row<Phase>)[event.kind] as Cell<Phase, EventKind>;
  if ('ignore' in cell) return { state, effects: [], outcome: 'ignored', reason: cell.ignore };
  if ('reject' in cell) return { state, effects: [], outcome: 'rejected', reason: cell.reject };
  const step = (cell as (s: SupervisorState, e: SupervisorEvent) => Step | undefined | 'busy')(state, event);
  if (step === 'busy') return { state, effects: [], outcome: 'rejected', reason: busy.reject };
  if (step !== undefined) return step;
  if (event.kind === 'spawned') return orphan(state, event);
  return { state, effects: [], outcome: 'ignored', reason: stale.ignore };
}
