/**
 * Reload, pure. A new bootstrap or binary is first checked with `envoy --mode
 * validate` (binds nothing, touches no running epoch), then started as the
 * next epoch next to its parent with the same base id; it counts as up once
 * its admin API answers (which is after the whole bootstrap loaded), and the
 * parent is left to Envoy, which shuts it down after --parent-shutdown-time-s.
 * A child that fails is costly: it has already shut its parent's admin API
 * down, and it leaves Envoy's shared memory marked "still initializing", so
 * every later hot restart of this base id fails. The old epoch keeps serving
 * (its admin address is dropped if the API no longer answers), and the next
 * reload replaces it with a cold restart: stop it, then epoch 0.
 */
import { stableJson } from '../../lib/stable-json.js';
import { crash } from './restart-policy.js';
import {
  applied,
  describeExit,
  type Effect,
  type EventOf,
  enter,
  type Failure,
  type Settings,
  type StateIn,
  type Step,
  type SupervisorState,
  withId,
} from './supervisor-state.js';

type Validating = StateIn<'validating'>;
type HotRestarting = StateIn<'hot-restarting'>;
type Cold = StateIn<'cold-restarting'>;

export function sameSettings(a: Settings, b: Settings): boolean {
  // Sorted keys: key order alone never triggers a hot restart.
  return stableJson(a.bootstrap) === stableJson(b.bootstrap) && a.binary === b.binary && a.binaryId === b.binaryId;
}

const answer = (result: 'hot-restarted' | 'unchanged'): Effect => ({ kind: 'settle-reload', result });
const refuse = (failure: Failure): Effect => ({ kind: 'settle-reload', failure });

/** A reload while no Envoy can be restarted (stopped, backoff, stopping): the next start uses the new settings. */
export function keepForNextStart(s: SupervisorState, next: Settings, why: string): Step {
  if (sameSettings(next, s.settings)) return applied(s, [answer('unchanged')]);
  return applied({ ...s, settings: next }, [
    { kind: 'log', level: 'info', message: `Envoy settings changed while ${why}; the next start uses them`, fields: { state: s.phase } },
    answer('unchanged'),
  ]);
}

/** reload() while an epoch runs: validate first. */
export function beginReload(s: StateIn<'running'>, next: Settings): Step {
  if (sameSettings(next, s.settings)) return applied(s, [answer('unchanged')]);
  const [id, numbered] = withId(s);
  const data = { phase: 'validating', id, proc: s.proc, next, ...(s.adminAddress ? { adminAddress: s.adminAddress } : {}) } as const;
  return applied(enter(numbered, data), [{ kind: 'validate', id, epoch: s.epoch + 1, settings: next }]);
}

export const validatingOn = {
  exited(s: Validating, e: EventOf<'exited'>): Step | undefined {
    if (e.id !== s.proc.id || s.procExit) return undefined;
    const exit = { code: e.code, signal: e.signal, at: e.at };
    return applied({ ...s, procExit: exit, lastExit: exit }, [{ kind: 'abort-validate', id: s.id }]);
  },
  validated(s: Validating, e: EventOf<'validated'>): Step | undefined {
    if (e.id !== s.id) return undefined;
    if (s.procExit) {
      // The epoch crashed during the validation: restart it with the new settings.
      return crash(s, s.proc, s.procExit, { settings: s.next, extra: [answer('unchanged')] });
    }
    const running = enter(s, { phase: 'running', proc: s.proc, ...(s.adminAddress ? { adminAddress: s.adminAddress } : {}) });
    if (!e.ok) {
      const why = e.output.trim().split('\n').slice(-3).join('\n');
      return applied(running, [
        {
          kind: 'log',
          level: 'error',
          message: 'Envoy rejected the new bootstrap; the running Envoy keeps the previous one',
          fields: { epoch: s.epoch, output: why },
        },
        refuse({
          code: 'MESH_E_ENVOY_RELOAD',
          message: `Envoy rejected the new bootstrap; the running Envoy keeps the previous one: ${why}`,
        }),
      ]);
    }
    if (s.hotRestartBroken) {
      return applied(enter(s, { phase: 'cold-restarting', old: s.proc, next: s.next }), [
        {
          kind: 'log',
          level: 'warn',
          message: 'Envoy cannot hot-restart after an earlier failed attempt; restarting it cold (connections are cut)',
          fields: { epoch: s.epoch, pid: s.proc.pid },
        },
        { kind: 'terminate', ids: [s.proc.id, ...s.retiring.map((p) => p.id)] },
      ]);
    }
    const [id, numbered] = withId(s);
    const data = { phase: 'hot-restarting', id, parent: s.proc, launching: true, next: s.next, probing: false } as const;
    return applied(enter(numbered, { ...data, ...(s.adminAddress ? { parentAdmin: s.adminAddress } : {}) }), [
      { kind: 'log', level: 'info', message: 'hot-restarting Envoy', fields: { epoch: s.epoch + 1, parentPid: s.proc.pid } },
      { kind: 'spawn', id, epoch: s.epoch + 1, settings: s.next, prepare: false },
    ]);
  },
};

/** The child failed (exited, timed out and was killed, or never spawned): the parent serves on, if it still runs. */
function childFailed(s: HotRestarting, reason: string): Step {
  const epoch = s.epoch + 1;
  const broken = { ...s, hotRestartBroken: true, failure: reason };
  const log: Effect = {
    kind: 'log',
    level: 'error',
    message: 'Envoy hot restart failed',
    fields: { epoch, error: reason },
    outputOf: s.id,
  };
  const failure = refuse({ code: 'MESH_E_ENVOY_RELOAD', message: `Envoy hot restart to epoch ${epoch} failed: ${reason}`, outputOf: s.id });
  if (s.parentExit) return crash(broken, s.parent, s.parentExit, { extra: [log, failure] });
  if (s.parentAdmin === undefined) return applied(enter(broken, { phase: 'running', proc: s.parent }), [log, failure]);
  return applied({ ...broken, probing: true }, [log, { kind: 'probe-admin', id: s.parent.id, address: s.parentAdmin }]);
}

export const hotRestartingOn = {
  spawned(s: HotRestarting, e: EventOf<'spawned'>): Step | undefined {
    if (e.id !== s.id || !s.launching) return undefined;
    const child = {
      id: e.id,
      epoch: s.epoch + 1,
      startedAt: e.at,
      ...(e.pid === undefined ? {} : { pid: e.pid }),
      ...(e.version === undefined ? {} : { version: e.version }),
    };
    return applied({ ...s, launching: false, child }, [{ kind: 'await-admin', id: e.id, epoch: child.epoch, confirm: true }]);
  },
  spawnFailed(s: HotRestarting, e: EventOf<'spawn-failed'>): Step | undefined {
    if (e.id !== s.id || !s.launching) return undefined;
    return childFailed({ ...s, launching: false }, `could not start: ${e.reason}`);
  },
  adminReady(s: HotRestarting, e: EventOf<'admin-ready'>): Step | undefined {
    if (s.child?.id !== e.id || s.failure !== undefined) return undefined;
    const { parent, child } = s;
    const epoch = child.epoch;
    const retire = s.parentExit ? [] : [parent];
    const running = enter(
      s,
      { phase: 'running', proc: child, adminAddress: e.address },
      { epoch, settings: s.next, retiring: [...s.retiring, ...retire], ...(child.version ? { version: child.version } : {}) },
    );
    return applied(running, [
      ...retire.map((p): Effect => ({ kind: 'retire', id: p.id })),
      {
        kind: 'log',
        level: 'info',
        message: 'Envoy hot-restarted',
        fields: { epoch, pid: child.pid, parentPid: parent.pid, adminAddress: e.address, version: child.version },
      },
      { kind: 'notify', event: 'hot-restarted', detail: `epoch ${epoch}` },
      answer('hot-restarted'),
    ]);
  },
  adminTimeout(s: HotRestarting, e: EventOf<'admin-timeout'>): Step | undefined {
    if (s.child?.id !== e.id || s.failure !== undefined) return undefined;
    // SIGKILL, not SIGTERM: a child shutting down cleanly tells its parent to terminate too.
    return applied({ ...s, failure: e.reason }, [{ kind: 'kill', id: e.id }]);
  },
  exited(s: HotRestarting, e: EventOf<'exited'>): Step | undefined {
    const exit = { code: e.code, signal: e.signal, at: e.at };
    if (s.child?.id === e.id) {
      const { child: _gone, ...rest } = s;
      return childFailed({ ...rest, lastExit: exit }, s.failure ?? `Envoy exited (${describeExit(exit)}) before its admin API answered`);
    }
    if (s.parent.id !== e.id || s.parentExit) return undefined;
    if (s.probing) {
      const failure = refuse({
        code: 'MESH_E_ENVOY_RELOAD',
        message: `Envoy hot restart to epoch ${s.epoch + 1} failed: ${s.failure}`,
        outputOf: s.id,
      });
      return crash(s, s.parent, exit, { extra: [failure] });
    }
    // The parent of a hot restart leaves on its own once the child is up: expected.
    return applied({ ...s, parentExit: exit }, [
      {
        kind: 'log',
        level: 'info',
        message: 'old Envoy epoch exited during hot restart',
        fields: { epoch: s.parent.epoch, pid: s.parent.pid },
      },
    ]);
  },
  adminProbed(s: HotRestarting, e: EventOf<'admin-probed'>): Step | undefined {
    if (!s.probing || e.id !== s.parent.id) return undefined;
    const address = e.answers ? s.parentAdmin : undefined;
    const effects: Effect[] = e.answers
      ? []
      : [
          {
            kind: 'log',
            level: 'warn',
            message: "the failed hot restart shut the old epoch's admin API down; it keeps serving, the next reload restarts it",
            fields: { epoch: s.epoch, pid: s.parent.pid },
          },
        ];
    effects.push(
      refuse({ code: 'MESH_E_ENVOY_RELOAD', message: `Envoy hot restart to epoch ${s.epoch + 1} failed: ${s.failure}`, outputOf: s.id }),
    );
    return applied(enter(s, { phase: 'running', proc: s.parent, ...(address ? { adminAddress: address } : {}) }), effects);
  },
};

/** Cold restart: epoch 0 with the new settings once the old epoch and every retiring one are gone. */
export function coldStartIfClear(s: Cold): Step {
  if (s.old !== undefined || s.retiring.length > 0) return applied(s);
  const [id, numbered] = withId(s);
  return applied(
    enter(
      numbered,
      { phase: 'starting', id, initial: false, reload: { next: s.next, cold: true } },
      { epoch: 0, settings: s.next, hotRestartBroken: false },
    ),
    [{ kind: 'spawn', id, epoch: 0, settings: s.next, prepare: false }],
  );
}

export const coldRestartingOn = {
  exited(s: Cold, e: EventOf<'exited'>): Step | undefined {
    if (s.old?.id !== e.id) return undefined;
    const { old: _gone, ...rest } = s;
    return coldStartIfClear(rest);
  },
};
