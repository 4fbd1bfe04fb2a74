/**
 * The supervisor's shell: runs the effects the transition table asks for and
 * reports how each ended as an event (spawned, exited, admin-ready, validated,
 * drained, ...). It owns the process handles, keyed by the ids the state
 * uses, and an AbortController per spawn or validation so a stop can cut them
 * short (a `--version` or `--mode validate` run is killed; a spawn not yet
 * made is not made). File writes run one at a time in the order asked, so the
 * shared memory of a stopped Envoy is never removed after the next start wrote
 * its bootstrap.
 */
import type { Clock, TimerHandle } from '../../lib/clock.js';
import type { Logger } from '../../lib/logger.js';
import { parseAccessLogLine } from './access-log-line.js';
import { type AdminRequest, adminAnswers, drainConnections } from './admin-client.js';
import { parseEnvoyVersion, validateArgs } from './envoy-args.js';
import type { EnvoyFiles } from './envoy-files.js';
import { type LaunchedProcess, lastLines, launch, runToCompletion, type SpawnFn, terminate } from './process-launcher.js';
import type { Effect, SupervisorEvent } from './supervisor-state.js';

type EventBody = SupervisorEvent extends infer E ? (E extends SupervisorEvent ? Omit<E, 'at'> : never) : never;

export interface EffectDeps {
  clock: Clock;
  log: Logger;
  files: EnvoyFiles;
  spawn: SpawnFn;
  admin: AdminRequest;
  argsFor(epoch: number): string[];
  startTimeoutMs: number;
  drainTimeMs: number;
  /** How long an old epoch may live after a hot restart before it gets SIGTERM. */
  retireAfterMs: number;
  dispatch(event: EventBody): void;
}

const POLL_MS = 50;
const VERSION_TIMEOUT_MS = 10_000;
/** Output of this many recent processes is kept for log lines and error messages. */
const KEEP_OUTPUTS = 8;

export function createEffectRunner(deps: EffectDeps) {
  const { clock, log, files, admin, dispatch } = deps;
  const procs = new Map<number, LaunchedProcess>();
  const outputs = new Map<number, () => string>();
  const aborts = new Map<number, AbortController>();
  const timers = new Map<number, TimerHandle>();
  let writes: Promise<unknown> = Promise.resolve();
  let version: { key: string; value: string | undefined } | undefined;

  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = writes.then(fn);
    writes = run.catch(() => {});
    return run;
  };
  const remember = (id: number, output: () => string) => {
    outputs.set(id, output);
    for (const old of outputs.keys()) if (outputs.size > KEEP_OUTPUTS) outputs.delete(old);
  };

  /** `envoy --version`, once per binary (path and identity). */
  async function readVersion(binary: string, binaryId: string, signal: AbortSignal): Promise<string | undefined> {
    const key = `${binary}\0${binaryId}`;
    if (version?.key === key) return version.value;
    const { output } = await runToCompletion(deps.spawn, clock, binary, ['--version'], { timeoutMs: VERSION_TIMEOUT_MS, signal });
    if (signal.aborted) return undefined;
    const value = parseEnvoyVersion(output);
    if (value === undefined) log.warn('could not read the Envoy version', { binary, output: lastLines(output, 2) });
    version = { key, value };
    return value;
  }

  async function spawnEpoch(e: Extract<Effect, { kind: 'spawn' }>): Promise<void> {
    const abort = new AbortController();
    aborts.set(e.id, abort);
    const notAborted = () => {
      if (abort.signal.aborted) throw new Error('stop() was called before the spawn');
    };
    try {
      let binaryId: string | undefined;
      if (e.prepare) {
        await serial(() => files.prepare());
        binaryId = await files.binaryIdentity(e.settings.binary);
      }
      const envoyVersion = await readVersion(e.settings.binary, binaryId ?? e.settings.binaryId, abort.signal);
      notAborted();
      await serial(() => files.writeBootstrap(e.epoch, e.settings.bootstrap));
      notAborted();
      let pid: number | undefined;
      const proc = launch(deps.spawn, e.settings.binary, deps.argsFor(e.epoch), {
        onLine: (line) => {
          const access = parseAccessLogLine(line);
          if (access === undefined) log.debug('envoy output', { epoch: e.epoch, pid, line });
          else log.info('access', { access });
        },
        onExit: (exit) => {
          procs.delete(e.id);
          dispatch({ kind: 'exited', id: e.id, code: exit.code, signal: exit.signal });
        },
      });
      pid = proc.pid;
      if (proc.exit() === undefined) procs.set(e.id, proc);
      remember(e.id, proc.output);
      const known = {
        ...(pid === undefined ? {} : { pid }),
        ...(binaryId === undefined ? {} : { binaryId }),
        ...(envoyVersion ? { version: envoyVersion } : {}),
      };
      dispatch({ kind: 'spawned', id: e.id, ...known });
    } catch (err) {
      dispatch({ kind: 'spawn-failed', id: e.id, reason: (err as Error).message });
    } finally {
      aborts.delete(e.id);
    }
  }

  function awaitAdmin(e: Extract<Effect, { kind: 'await-admin' }>): void {
    const proc = procs.get(e.id);
    if (proc === undefined) return; // gone already: its exit is reported
    const what = e.confirm ? 'its admin API to answer' : 'it to write its admin address';
    let done = false;
    let poll: TimerHandle | undefined;
    const finish = (event?: EventBody) => {
      if (done) return;
      done = true;
      poll?.cancel();
      deadline.cancel();
      if (event) dispatch(event);
    };
    const deadline = clock.setTimer(deps.startTimeoutMs, () =>
      finish({ kind: 'admin-timeout', id: e.id, reason: `timed out after ${deps.startTimeoutMs} ms waiting for ${what}` }),
    );
    proc.onGone(() => finish()); // its exit is reported
    const attempt = async (): Promise<void> => {
      let address = await files.readAdminAddress(e.epoch).catch(() => undefined);
      // Admin answers only once the main loop runs, that is after the whole bootstrap loaded.
      if (address !== undefined && e.confirm && !(await adminAnswers(admin, address))) address = undefined;
      if (done) return;
      if (address !== undefined) return finish({ kind: 'admin-ready', id: e.id, address });
      poll = clock.setTimer(POLL_MS, () => void attempt());
    };
    void attempt();
  }

  async function validate(e: Extract<Effect, { kind: 'validate' }>): Promise<void> {
    const abort = new AbortController();
    aborts.set(e.id, abort);
    let result: { ok: boolean; output: string };
    try {
      const file = await serial(() => files.writeBootstrap(e.epoch, e.settings.bootstrap));
      result = await runToCompletion(deps.spawn, clock, e.settings.binary, validateArgs(file), {
        timeoutMs: deps.startTimeoutMs,
        signal: abort.signal,
      });
    } catch (err) {
      result = { ok: false, output: (err as Error).message };
    } finally {
      aborts.delete(e.id);
    }
    dispatch({ kind: 'validated', id: e.id, ...result });
  }

  type Of<K extends Effect['kind']> = Extract<Effect, { kind: K }>;
  type Own = Exclude<Effect['kind'], 'settle-start' | 'settle-reload' | 'settle-stop' | 'notify'>;
  const abort = (e: { id: number }) => aborts.get(e.id)?.abort();
  const handlers: { [K in Own]: (e: Of<K>) => void } = {
    spawn: (e) => void spawnEpoch(e),
    'abort-spawn': abort,
    'abort-validate': abort,
    'await-admin': awaitAdmin,
    validate: (e) => void validate(e),
    kill: (e) => procs.get(e.id)?.kill('SIGKILL'),
    terminate(e) {
      for (const id of e.ids) {
        const proc = procs.get(id);
        if (proc) terminate(proc, clock, () => log.warn('Envoy did not exit after SIGTERM; sending SIGKILL', { pid: proc.pid }));
      }
    },
    retire(e) {
      const proc = procs.get(e.id);
      // Envoy shuts the old epoch down after --parent-shutdown-time-s; this is only a safety net.
      const timer =
        proc &&
        clock.setTimer(deps.retireAfterMs, () => {
          log.warn('old Envoy epoch outlived its parent shutdown time; terminating it', { pid: proc.pid });
          proc.kill('SIGTERM');
        });
      proc?.onGone(() => timer?.cancel());
    },
    drain(e) {
      const proc = procs.get(e.id);
      const options = { clock, log, drainTimeMs: deps.drainTimeMs };
      const drained = proc === undefined ? Promise.resolve() : drainConnections(admin, e.address, proc, options);
      void drained.then(() => dispatch({ kind: 'drained', id: e.id }));
    },
    'probe-admin': (e) => void adminAnswers(admin, e.address).then((answers) => dispatch({ kind: 'admin-probed', id: e.id, answers })),
    'set-timer'(e) {
      timers.set(
        e.timer,
        clock.setTimer(e.ms, () => {
          timers.delete(e.timer);
          dispatch({ kind: 'backoff-over', timer: e.timer });
        }),
      );
    },
    'cancel-timer'(e) {
      timers.get(e.timer)?.cancel();
      timers.delete(e.timer);
    },
    // Envoy leaves its hot-restart shared memory behind; no process of this base id is left now.
    'remove-shm': () =>
      void serial(() => files.cleanUp())
        .catch((err) => log.warn("could not remove Envoy's shared memory", { error: err }))
        .then(() => dispatch({ kind: 'shm-removed' })),
    log(e) {
      const output = e.outputOf === undefined ? '' : lastLines(outputs.get(e.outputOf)?.() ?? '');
      log[e.level](e.message, { ...e.fields, ...(output ? { output } : {}) });
    },
  };

  /** Runs one effect of the table's; settle-* and notify are the supervisor's own. */
  function run(effect: Effect): void {
    const handler = (handlers as Partial<Record<Effect['kind'], (e: Effect) => void>>)[effect.kind];
    handler?.(effect);
  }

  return {
    run,
    /** The last lines of a process's output (for error messages). */
    output: (id: number, lines: number) => lastLines(outputs.get(id)?.() ?? '', lines),
    /** The pid of a live process. */
    pid: (id: number) => procs.get(id)?.pid,
  };
}
