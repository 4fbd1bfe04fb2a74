/**
 * Epoch 0, pure: start() (or a crash restart, or a cold restart) launches it,
 * and it counts as started once it wrote its admin address (Envoy is not LIVE
 * then: it waits for its configuration over ADS). If start()'s own attempt
 * cannot launch the binary at all, start() fails and nothing restarts (a
 * configuration error). An Envoy that ran and exited (or hung) is a crash like
 * any other, also on the first start: it backs off and restarts, and start()
 * resolves with Envoy in backoff, so the agent keeps running and says why its
 * workloads are not served. A start that hangs is killed after the start
 * timeout. A reload that arrives meanwhile waits until the epoch runs.
 */
import { beginReload, sameSettings } from './hot-restart.js';
import { crash } from './restart-policy.js';
import { beginStop } from './stop-sequence.js';
import {
  applied,
  describeExit,
  type Effect,
  type EventOf,
  type ExitInfo,
  enter,
  type Settings,
  type StateIn,
  type Step,
  type SupervisorState,
  withId,
} from './supervisor-state.js';

type Starting = StateIn<'starting'>;

/** start() from `stopped`: epoch 0 with the current settings, the crash count starting over. */
export function startFresh(s: StateIn<'stopped'>): Step {
  const [id, numbered] = withId(s);
  return applied(enter(numbered, { phase: 'starting', id, initial: true }, { epoch: 0, failures: 0, hotRestartBroken: false }), [
    { kind: 'spawn', id, epoch: 0, settings: s.settings, prepare: true },
  ]);
}

/** The answer to a reload that waited in `starting`, when the start failed. */
function reloadAfterFailure(s: Starting): { effects: Effect[]; settings?: Settings } {
  if (s.reload === undefined) return { effects: [] };
  if (s.reload.cold) {
    const message = 'Envoy did not come back from a cold restart; it is restarted with backoff';
    return { effects: [{ kind: 'settle-reload', failure: { code: 'MESH_E_ENVOY_RELOAD', message, outputOf: s.id } }] };
  }
  return { effects: [{ kind: 'settle-reload', result: 'unchanged' }], settings: s.reload.next };
}

function startFailed(s: Starting, reason: string, at: number, exit?: ExitInfo): Step {
  const reload = reloadAfterFailure(s);
  if (!s.initial || exit !== undefined) {
    const proc = s.proc ?? { id: s.id, epoch: 0, startedAt: at };
    // start()'s own attempt ran and failed: start() is answered; the restart follows the backoff.
    const extra: Effect[] = s.initial ? [...reload.effects, { kind: 'settle-start' }] : reload.effects;
    const options = { why: reason, extra, ...(reload.settings ? { settings: reload.settings } : {}) };
    return crash(s, proc, exit ?? { code: null, signal: null, at }, options);
  }
  const stopped = enter(
    s,
    { phase: 'stopped' },
    { ...(exit ? { lastExit: exit } : {}), ...(reload.settings ? { settings: reload.settings } : {}) },
  );
  return applied(stopped, [
    { kind: 'log', level: 'error', message: 'Envoy did not start', fields: { error: reason }, outputOf: s.id },
    { kind: 'settle-start', failure: { code: 'MESH_E_PROCESS_START', message: `Envoy did not start: ${reason}`, outputOf: s.id } },
    ...reload.effects,
    // An epoch 0 that ran may have created the shared memory; nothing else of this base id runs.
    ...(s.proc ? [{ kind: 'remove-shm' } as const] : []),
  ]);
}

export const startingOn = {
  start(s: Starting): Step {
    // start()'s own attempt answers when it is over; during a crash restart the supervisor already runs.
    return applied(s, s.initial ? [] : [{ kind: 'settle-start' }]);
  },
  stop(s: Starting): Step {
    const extra: Effect[] = [];
    if (s.initial)
      extra.push({
        kind: 'settle-start',
        failure: { code: 'MESH_E_PROCESS_START', message: 'Envoy did not start: stop() was called first' },
      });
    const settings = s.reload?.next ?? s.settings;
    if (s.reload)
      extra.push({ kind: 'settle-reload', failure: { code: 'MESH_E_ENVOY_RELOAD', message: 'Envoy was stopped during the reload' } });
    return beginStop(
      { ...s, settings },
      {
        ...(s.proc ? { current: s.proc } : { launching: s.id }),
        alive: s.proc ? [s.proc] : [],
        drain: false,
        extra,
      },
    );
  },
  reload(s: Starting, e: EventOf<'reload'>): Step | 'busy' {
    if (s.reload !== undefined) return 'busy';
    if (sameSettings(e.next, s.settings)) return applied(s, [{ kind: 'settle-reload', result: 'unchanged' }]);
    return applied({ ...s, reload: { next: e.next, cold: false } });
  },
  spawned(s: Starting, e: EventOf<'spawned'>): Step | undefined {
    if (e.id !== s.id || s.proc !== undefined) return undefined;
    const proc = {
      id: e.id,
      epoch: 0,
      startedAt: e.at,
      ...(e.pid === undefined ? {} : { pid: e.pid }),
      ...(e.version === undefined ? {} : { version: e.version }),
    };
    const settings = e.binaryId === undefined ? s.settings : { ...s.settings, binaryId: e.binaryId };
    return applied({ ...s, proc, settings }, [{ kind: 'await-admin', id: e.id, epoch: 0, confirm: false }]);
  },
  spawnFailed(s: Starting, e: EventOf<'spawn-failed'>): Step | undefined {
    if (e.id !== s.id || s.proc !== undefined) return undefined;
    return startFailed(s, `could not start: ${e.reason}`, e.at);
  },
  adminReady(s: Starting, e: EventOf<'admin-ready'>): Step | undefined {
    if (s.proc?.id !== e.id || s.failure !== undefined) return undefined;
    const version = s.proc.version;
    const running = enter(s, { phase: 'running', proc: s.proc, adminAddress: e.address }, version ? { version } : {});
    const effects: Effect[] = [
      { kind: 'log', level: 'info', message: 'Envoy started', fields: { pid: s.proc.pid, epoch: 0, adminAddress: e.address, version } },
      { kind: 'notify', event: 'started' },
      { kind: 'settle-start' },
    ];
    if (s.reload?.cold) effects.push({ kind: 'settle-reload', result: 'hot-restarted' });
    if (s.reload === undefined || s.reload.cold) return applied(running, effects);
    // The reload that waited for this start: validate and hot-restart now.
    const reload = beginReload(running as StateIn<'running'>, s.reload.next);
    return applied(reload.state, [...effects, ...reload.effects]);
  },
  adminTimeout(s: Starting, e: EventOf<'admin-timeout'>): Step | undefined {
    if (s.proc?.id !== e.id || s.failure !== undefined) return undefined;
    return applied({ ...s, failure: e.reason }, [
      { kind: 'log', level: 'error', message: 'Envoy did not write its admin address in time; killing it', fields: { error: e.reason } },
      { kind: 'kill', id: e.id },
    ]);
  },
  exited(s: Starting, e: EventOf<'exited'>): Step | undefined {
    if (s.proc?.id !== e.id) return undefined;
    const exit = { code: e.code, signal: e.signal, at: e.at };
    return startFailed(s, s.failure ?? `Envoy exited (${describeExit(exit)}) before writing its admin address`, e.at, exit);
  },
};

/** An old epoch left to Envoy exited: expected, whatever the phase. */
export function dropRetired<S extends SupervisorState>(s: S, e: EventOf<'exited'>): { state: S; effects: Effect[] } | undefined {
  const old = s.retiring.find((p) => p.id === e.id);
  if (old === undefined) return undefined;
  return {
    state: { ...s, retiring: s.retiring.filter((p) => p.id !== e.id) },
    effects: [
      {
        kind: 'log',
        level: 'info',
        message: 'old Envoy epoch exited',
        fields: { epoch: old.epoch, pid: old.pid, code: e.code, signal: e.signal },
      },
    ],
  };
}
