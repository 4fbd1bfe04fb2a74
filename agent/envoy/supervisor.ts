/**
 * Runs the local Envoy and keeps it running. A crash is restarted after a
 * backoff that doubles up to a maximum (a long, stable run resets it); a new
 * bootstrap or binary is applied by Envoy's hot restart (epoch + 1, same base
 * id), so established connections survive; stop() drains listeners through the
 * admin API before it signals (SIGTERM, SIGKILL after 5 s) and removes Envoy's
 * shared memory once no epoch is left. A new bootstrap is first checked with
 * `envoy --mode validate`, because a hot-restart child that fails is costly:
 * it has already shut its parent's admin API down, and it leaves Envoy's shared
 * memory marked "still initializing", so every later hot restart with this
 * base id fails. The old epoch keeps serving; the next reload then replaces it
 * with a cold restart (epoch 0). stop() may come at any moment (during start(),
 * a hot restart, a validation, a backoff): it resolves once no Envoy process of
 * this supervisor is left, and a start() it cuts short fails.
 *
 * The parts: the state, events and effects (supervisor-state.ts), the
 * transition table (supervisor-table.ts, with start-sequence.ts,
 * hot-restart.ts, restart-policy.ts and stop-sequence.ts, all pure), and the
 * shell that runs the effects (supervisor-effects.ts, process-launcher.ts,
 * envoy-files.ts, admin-client.ts). This file feeds events in one at a time and
 * answers the callers. All timers go through the injected clock, all file I/O
 * through the injected EnvoyFiles.
 */
import type { Clock } from '../../lib/clock.js';
import { MeshError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { type AdminRequest, httpAdmin } from './admin-client.js';
import { envoyArgs } from './envoy-args.js';
import { type EnvoyFiles, nodeEnvoyFiles } from './envoy-files.js';
import { type EnvoyEvent, type EnvoyStatus, envoyStatus } from './envoy-status.js';
import { defaultSpawn, type SpawnFn } from './process-launcher.js';
import { createEffectRunner } from './supervisor-effects.js';
import { type Effect, type Failure, initialState, type Settings, type Step, type SupervisorEvent } from './supervisor-state.js';
import { transition } from './supervisor-table.js';

export { envoySharedMemoryPath } from './envoy-files.js';
export type { EnvoyEvent, EnvoyStatus } from './envoy-status.js';
export type { EnvoyEventKind } from './supervisor-state.js';

export interface EnvoySupervisorOptions {
  binary: string;
  /** Holds bootstrap-<epoch>.json and admin-address-<epoch> (created if missing). */
  workDir: string;
  bootstrap: Record<string, unknown>;
  /** --base-id for hot restart, fixed per agent. */
  baseId: number;
  concurrency?: number;
  logLevel?: string;
  /** How long stop() waits for connections after draining listeners; also --drain-time-s. */
  drainTimeMs: number;
  /** --parent-shutdown-time-s: how long an old epoch lives after a hot restart (default drainTimeMs + 5 s). */
  parentShutdownMs?: number;
  /** Crash restart delays: doubling from initialMs up to maxMs. */
  backoff: { initialMs: number; maxMs: number };
  /** A process that ran this long resets the backoff (default 30 s). */
  stableAfterMs?: number;
  /** How long a new epoch may take to write its admin address (and, on hot restart, answer admin). Default 30 s. */
  startTimeoutMs?: number;
  clock: Clock;
  log: Logger;
  spawn?: SpawnFn;
  /** The admin API client (default: HTTP). */
  adminRequest?: AdminRequest;
  /** Bootstrap and admin-address files, the binary's identity, the shared memory (default: on disk under workDir). */
  files?: EnvoyFiles;
}

export interface EnvoySupervisor {
  /** Spawns epoch 0; resolves once its admin address file is written (not LIVE: Envoy waits for ADS). Fails if stop() comes first. */
  start(): Promise<void>;
  /**
   * Hot-restarts when the bootstrap or the binary changed. 'unchanged' also when
   * no Envoy runs (stopped or waiting to restart): the next start uses the new settings.
   */
  reload(next: { bootstrap?: Record<string, unknown>; binary?: string }): Promise<'hot-restarted' | 'unchanged'>;
  /** Drains, then SIGTERM (SIGKILL after 5 s); resolves when every Envoy process is gone. No restarts after it. Any moment. */
  stop(): Promise<void>;
  status(): EnvoyStatus;
  onEvent(listener: (e: EnvoyEvent) => void): () => void;
}

/** An old epoch Envoy failed to shut down this long after its parent shutdown time gets SIGTERM. */
const RETIRE_GRACE_MS = 15_000;

export function createEnvoySupervisor(options: EnvoySupervisorOptions): EnvoySupervisor {
  const { clock, log, workDir, baseId } = options;
  const files = options.files ?? nodeEnvoyFiles(workDir, baseId);
  const parentShutdownMs = options.parentShutdownMs ?? options.drainTimeMs + 5_000;
  const argsFor = (epoch: number) =>
    envoyArgs({
      workDir,
      epoch,
      baseId,
      drainTimeMs: options.drainTimeMs,
      parentShutdownMs,
      concurrency: options.concurrency ?? 2,
      logLevel: options.logLevel ?? 'warning',
    });
  const policy = { ...options.backoff, stableAfterMs: options.stableAfterMs ?? 30_000 };
  let state = initialState({ bootstrap: options.bootstrap, binary: options.binary, binaryId: '' }, policy);
  const queue: Array<{ event: SupervisorEvent; onStep?: (step: Step) => void }> = [];
  let dispatching = false;
  const startWaiters: Array<{ resolve: () => void; reject: (err: Error) => void }> = [];
  const stopWaiters: Array<() => void> = [];
  let reloadWaiter: { resolve: (r: 'hot-restarted' | 'unchanged') => void; reject: (err: Error) => void } | undefined;
  let reloads: Promise<unknown> = Promise.resolve();
  const listeners = new Set<(e: EnvoyEvent) => void>();

  const effects = createEffectRunner({
    clock,
    log,
    files,
    spawn: options.spawn ?? defaultSpawn,
    admin: options.adminRequest ?? httpAdmin,
    argsFor,
    startTimeoutMs: options.startTimeoutMs ?? 30_000,
    drainTimeMs: options.drainTimeMs,
    retireAfterMs: parentShutdownMs + RETIRE_GRACE_MS,
    dispatch: (body) => dispatch({ ...body, at: clock.now() } as SupervisorEvent),
  });
  const status = () => envoyStatus(state);

  const toError = (failure: Failure, lines: number) => {
    const output = failure.outputOf === undefined ? '' : effects.output(failure.outputOf, lines);
    return new MeshError(failure.code, `${failure.message}${output ? `\n${output}` : ''}`, {
      details: { binary: state.settings.binary, workDir },
    });
  };

  function perform(effect: Effect): void {
    if (effect.kind === 'settle-start') {
      for (const waiter of startWaiters.splice(0)) {
        if (effect.failure) waiter.reject(toError(effect.failure, 10));
        else waiter.resolve();
      }
    } else if (effect.kind === 'settle-reload') {
      const waiter = reloadWaiter;
      reloadWaiter = undefined;
      if (effect.failure) waiter?.reject(toError(effect.failure, 5));
      else waiter?.resolve(effect.result ?? 'unchanged');
    } else if (effect.kind === 'settle-stop') {
      for (const resolve of stopWaiters.splice(0)) resolve();
    } else if (effect.kind === 'notify') {
      const event: EnvoyEvent = { kind: effect.event, status: status(), ...(effect.detail === undefined ? {} : { detail: effect.detail }) };
      for (const listener of listeners) {
        try {
          listener(event);
        } catch (err) {
          log.warn('an Envoy event listener threw', { error: err });
        }
      }
    } else effects.run(effect);
  }

  /** Events are handled one at a time, in order, also when an effect or a listener reports one synchronously. */
  function dispatch(event: SupervisorEvent, onStep?: (step: Step) => void): void {
    queue.push({ event, ...(onStep ? { onStep } : {}) });
    if (dispatching) return;
    dispatching = true;
    try {
      for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
        const step = transition(state, next.event);
        state = step.state;
        if (step.outcome !== 'applied')
          log.debug(`Envoy supervisor ${step.outcome} an event`, { event: next.event.kind, phase: state.phase, reason: step.reason });
        next.onStep?.(step);
        for (const effect of step.effects) {
          try {
            perform(effect);
          } catch (err) {
            log.error('an Envoy supervisor effect failed', { effect: effect.kind, error: err });
          }
        }
      }
    } finally {
      dispatching = false;
    }
  }

  function start(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const waiter = { resolve, reject };
      startWaiters.push(waiter);
      dispatch({ kind: 'start', at: clock.now() }, (step) => {
        if (step.outcome !== 'rejected') return;
        startWaiters.splice(startWaiters.indexOf(waiter), 1);
        reject(new MeshError('MESH_E_PROCESS_START', `Envoy was not started: ${step.reason}`, { details: { workDir } }));
      });
    });
  }

  function reload(next: { bootstrap?: Record<string, unknown>; binary?: string }): Promise<'hot-restarted' | 'unchanged'> {
    const run = reloads.then(async () => {
      const binary = next.binary ?? state.settings.binary;
      const bootstrap = next.bootstrap ?? state.settings.bootstrap;
      const settings: Settings = { bootstrap, binary, binaryId: await files.binaryIdentity(binary) };
      return new Promise<'hot-restarted' | 'unchanged'>((resolve, reject) => {
        reloadWaiter = { resolve, reject };
        dispatch({ kind: 'reload', next: settings, at: clock.now() }, (step) => {
          if (step.outcome !== 'rejected') return;
          reloadWaiter = undefined;
          reject(new MeshError('MESH_E_ENVOY_RELOAD', `Envoy was not reloaded: ${step.reason}`, { details: { binary } }));
        });
      });
    });
    reloads = run.catch(() => {});
    return run;
  }

  return {
    start,
    reload,
    stop: () =>
      new Promise<void>((resolve) => {
        stopWaiters.push(resolve);
        dispatch({ kind: 'stop', at: clock.now() });
      }),
    status,
    onEvent(listener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
  };
}
