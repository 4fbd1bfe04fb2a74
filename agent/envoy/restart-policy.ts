/**
 * Crash restarts, pure: an Envoy that exits on its own is started again after
 * a delay that doubles from `initialMs` up to `maxMs` (lib/backoff.ts's
 * ceiling, without jitter: one agent restarts one Envoy); a process that ran at
 * least `stableAfterMs` starts the doubling over. Also the two transitions of
 * a crash: into `backoff`, and out of it into a new epoch 0 once the delay is
 * over and no old epoch holds the base id any more.
 */
import { backoffCeiling } from '../../lib/backoff.js';
import {
  applied,
  describeExit,
  type Effect,
  type ExitInfo,
  enter,
  type ProcRef,
  type Settings,
  type Step,
  type SupervisorState,
  withId,
} from './supervisor-state.js';

export interface RestartPolicy {
  initialMs: number;
  maxMs: number;
  /** A process that ran this long resets the backoff. */
  stableAfterMs: number;
}

/** The delay before the next restart and the crash count after this crash. */
export function afterCrash(policy: RestartPolicy, failures: number, ranMs: number): { delayMs: number; failures: number } {
  const counted = ranMs >= policy.stableAfterMs ? 0 : failures;
  return { delayMs: backoffCeiling(policy, counted), failures: counted + 1 };
}

/**
 * The running epoch (or the start of one) failed: log it, stop old epochs that
 * still hold the base id, and wait in `backoff`. `extra` effects (answers to a
 * reload the crash cut short) go before the notifications.
 */
export function crash(
  state: SupervisorState,
  proc: Pick<ProcRef, 'id' | 'epoch' | 'pid' | 'startedAt'>,
  exit: ExitInfo,
  options: { settings?: Settings; extra?: readonly Effect[]; why?: string } = {},
): Step {
  const { delayMs, failures } = afterCrash(state.policy, state.failures, exit.at - proc.startedAt);
  const [timer, numbered] = withId(state);
  const retiring = state.retiring.map((p) => p.id);
  const effects: Effect[] = [
    {
      kind: 'log',
      level: 'error',
      message: 'Envoy exited unexpectedly; restarting after a backoff',
      fields: {
        epoch: proc.epoch,
        pid: proc.pid,
        code: exit.code,
        signal: exit.signal,
        restartInMs: delayMs,
        ...(options.why ? { why: options.why } : {}),
      },
      outputOf: proc.id,
    },
    // Old epochs still draining hold the base id that the next epoch 0 takes.
    ...(retiring.length > 0 ? [{ kind: 'terminate', ids: retiring } as const] : []),
    ...(options.extra ?? []),
    { kind: 'notify', event: 'exited', detail: options.why ?? describeExit(exit) },
    { kind: 'notify', event: 'restarting', detail: `in ${delayMs} ms` },
    { kind: 'set-timer', timer, ms: delayMs },
  ];
  const changes = { epoch: 0, failures, lastExit: exit, ...(options.settings ? { settings: options.settings } : {}) };
  return applied(enter(numbered, { phase: 'backoff', timer, nextRestartAt: exit.at + delayMs, due: false }, changes), effects);
}

/** The backoff is over (`due`): epoch 0 starts once no old epoch is left. */
export function restartIfDue(state: SupervisorState & { phase: 'backoff' }): Step {
  if (!state.due || state.retiring.length > 0) return applied(state);
  const [id, numbered] = withId(state);
  const restarts = state.restarts + 1;
  return applied(enter(numbered, { phase: 'starting', id, initial: false }, { epoch: 0, restarts, hotRestartBroken: false }), [
    { kind: 'log', level: 'info', message: 'restarting Envoy', fields: { restarts } },
    { kind: 'spawn', id, epoch: 0, settings: state.settings, prepare: false },
  ]);
}
