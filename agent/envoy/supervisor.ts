/**
 * Runs the local Envoy and keeps it running. A crash is restarted after a
 * backoff that doubles up to a maximum (a long, stable run resets it); a new
 * bootstrap or binary is applied by Envoy's hot restart (epoch + 1, same base
 * id), so established connections survive; stop() drains listeners through the
 * admin API before it signals. A new bootstrap is first checked with
 * `envoy --mode validate`, because a hot-restart child that fails is costly:
 * it has already shut its parent's admin API down, and it leaves Envoy's shared
 * memory marked "still initializing", so every later hot restart with this
 * base id fails. The old epoch keeps serving; the next reload then replaces it
 * with a cold restart (epoch 0). All timers go through the injected clock.
 */
import { spawn as nodeSpawn } from 'node:child_process';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { backoffCeiling } from '../../lib/backoff.js';
import type { Clock, TimerHandle } from '../../lib/clock.js';
import { MeshError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { stableJson } from '../../lib/stable-json.js';
import { type AdminRequest, activeConnections, adminAnswers, drainListeners, httpAdmin } from './admin-client.js';
import { adminAddressPath, bootstrapPath, envoyArgs, parseEnvoyVersion, validateArgs } from './envoy-args.js';

/** The part of a child process the supervisor uses (node's ChildProcess fits). */
export interface ChildLike {
  readonly pid?: number | undefined;
  readonly stdout?: OutputStream | null;
  readonly stderr?: OutputStream | null;
  kill(signal: NodeJS.Signals): boolean;
  /** After the process exited and its output ended; also after a failed spawn. */
  on(event: 'close', listener: (code: number | null, signal: NodeJS.Signals | null) => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
}

export interface OutputStream {
  on(event: 'data', listener: (chunk: Buffer | string) => void): unknown;
}

export interface EnvoySupervisorOptions {
  binary: string;
  /** Exists (created if not); holds bootstrap-<epoch>.json and admin-address-<epoch>. */
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
  spawn?: (binary: string, args: string[]) => ChildLike;
  /** The admin API client; unit tests inject one. */
  adminRequest?: AdminRequest;
}

// A type alias (not an interface) so it fits `{ state: string; [key: string]: unknown }`.
export type EnvoyStatus = {
  state: 'stopped' | 'starting' | 'running' | 'backoff' | 'draining' | 'hot-restarting';
  pid?: number;
  epoch: number;
  /** Crash restarts. */
  restarts: number;
  /** From `envoy --version`, e.g. "1.40.0". */
  version?: string;
  /** host:port of the current epoch's admin API. */
  adminAddress?: string;
  lastExit?: { code: number | null; signal: string | null; at: number };
  nextRestartAt?: number;
};

export type EnvoyEventKind = 'started' | 'exited' | 'restarting' | 'hot-restarted' | 'stopped';
export interface EnvoyEvent {
  kind: EnvoyEventKind;
  status: EnvoyStatus;
  detail?: string;
}

export interface EnvoySupervisor {
  /** Spawns epoch 0; resolves once its admin address file is written (not LIVE: Envoy waits for ADS). */
  start(): Promise<void>;
  /**
   * Hot-restarts when the bootstrap or the binary changed. 'unchanged' also when
   * no Envoy runs (stopped or waiting to restart): the next start uses the new settings.
   */
  reload(next: { bootstrap?: Record<string, unknown>; binary?: string }): Promise<'hot-restarted' | 'unchanged'>;
  /** Drains, then SIGTERM (SIGKILL after 5 s); resolves when every epoch is gone. No restarts after it. */
  stop(): Promise<void>;
  status(): EnvoyStatus;
  onEvent(listener: (e: EnvoyEvent) => void): () => void;
}

const KEEP_OUTPUT = 32 * 1024;
const POLL_MS = 50;
const DRAIN_POLL_MS = 100;
const KILL_AFTER_MS = 5_000;
/** An old epoch Envoy failed to shut down this long after its parent shutdown time gets SIGTERM. */
const RETIRE_GRACE_MS = 15_000;

interface Settings {
  bootstrap: Record<string, unknown>;
  binary: string;
  /** size, mtime and inode of the binary: a replaced file counts as a new binary. */
  binaryId: string;
}

interface Proc {
  readonly child: ChildLike;
  readonly pid: number | undefined;
  readonly epoch: number;
  readonly startedAt: number;
  readonly gone: Promise<void>;
  exit?: { code: number | null; signal: NodeJS.Signals | null };
  output(): string;
}

function defaultSpawn(binary: string, args: string[]): ChildLike {
  return nodeSpawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
}

async function binaryIdentity(binary: string): Promise<string> {
  try {
    const info = await stat(binary);
    return `${info.size}:${info.mtimeMs}:${info.ino}`;
  } catch (err) {
    throw new MeshError('MESH_E_CONFIG_INVALID', `the Envoy binary ${binary} cannot be read: ${(err as Error).message}`, {
      details: { binary },
      cause: err,
    });
  }
}

function describeExit(exit: { code: number | null; signal: string | null }): string {
  return exit.signal === null ? `exit code ${exit.code}` : `signal ${exit.signal}`;
}

/** The last few lines of a process's output, for log fields and error messages. */
function lastLines(output: string, n = 5): string {
  return output.trim().split('\n').slice(-n).join('\n');
}

/** The shared-memory file Envoy's hot restart uses for a base id (Envoy names it base id x 10). */
export function envoySharedMemoryPath(baseId: number): string {
  return `/dev/shm/envoy_shared_memory_${baseId * 10}`;
}

export function createEnvoySupervisor(options: EnvoySupervisorOptions): EnvoySupervisor {
  const { clock, log, workDir, baseId } = options;
  const spawnFn = options.spawn ?? defaultSpawn;
  const admin = options.adminRequest ?? httpAdmin;
  const concurrency = options.concurrency ?? 2;
  const logLevel = options.logLevel ?? 'warning';
  const parentShutdownMs = options.parentShutdownMs ?? options.drainTimeMs + 5_000;
  const stableAfterMs = options.stableAfterMs ?? 30_000;
  const startTimeoutMs = options.startTimeoutMs ?? 30_000;

  let settings: Settings = { bootstrap: options.bootstrap, binary: options.binary, binaryId: '' };
  let state: EnvoyStatus['state'] = 'stopped';
  let epoch = 0;
  let restarts = 0;
  /** Crashes since the last stable run; the next delay is initialMs * 2^failures. */
  let failures = 0;
  let version: string | undefined;
  let versionOf: string | undefined;
  let adminAddress: string | undefined;
  let lastExit: EnvoyStatus['lastExit'];
  let nextRestartAt: number | undefined;
  let backoffTimer: TimerHandle | undefined;

  let current: Proc | undefined;
  /** The new epoch of a hot restart until it proves it loaded its configuration. */
  let candidate: Proc | undefined;
  /** An old epoch that exited while a hot restart was under way (normal if the new one is fine). */
  let leftDuringHotRestart: Proc | undefined;
  const retiring = new Set<Proc>();
  /** start() is waiting for epoch 0: its exit is start()'s failure, not a crash. */
  let initialStart = false;
  /** A hot-restart child failed mid-start: Envoy refuses further hot restarts of this base id. */
  let hotRestartBroken = false;
  let stopping = false;
  let stopInFlight: Promise<void> | undefined;
  let startup: Promise<void> | undefined;
  let reloads: Promise<unknown> = Promise.resolve();
  const listeners = new Set<(e: EnvoyEvent) => void>();

  const status = (): EnvoyStatus => ({
    state,
    ...(current?.pid === undefined ? {} : { pid: current.pid }),
    epoch,
    restarts,
    ...(version === undefined ? {} : { version }),
    ...(adminAddress === undefined ? {} : { adminAddress }),
    ...(lastExit === undefined ? {} : { lastExit: { ...lastExit } }),
    ...(nextRestartAt === undefined ? {} : { nextRestartAt }),
  });

  const emit = (kind: EnvoyEventKind, detail?: string): void => {
    const event: EnvoyEvent = { kind, status: status(), ...(detail === undefined ? {} : { detail }) };
    for (const listener of listeners) {
      try {
        listener(event);
      } catch (err) {
        log.warn('an Envoy event listener threw', { error: err });
      }
    }
  };

  const sleep = (ms: number) => new Promise<void>((resolve) => clock.setTimer(ms, resolve));

  /** Spawns a process; output goes to the debug log and a 32 KB tail; onExit runs once it is gone. */
  function launch(binary: string, args: string[], procEpoch: number, onExit?: (proc: Proc) => void): Proc {
    const child = spawnFn(binary, args);
    let out = '';
    let markGone: () => void = () => {};
    const gone = new Promise<void>((resolve) => {
      markGone = resolve;
    });
    const proc: Proc = { child, pid: child.pid, epoch: procEpoch, startedAt: clock.now(), gone, output: () => out };
    const forward = (stream: OutputStream | null | undefined) => {
      let partial = '';
      stream?.on('data', (chunk) => {
        const text = chunk.toString();
        out = (out + text).slice(-KEEP_OUTPUT);
        const lines = (partial + text).split('\n');
        partial = lines.pop() ?? '';
        if (onExit === undefined) return;
        for (const line of lines) if (line.trim() !== '') log.debug('envoy output', { epoch: procEpoch, pid: proc.pid, line });
      });
    };
    forward(child.stdout);
    forward(child.stderr);
    child.on('error', (err) => {
      out += `\nspawn error: ${err.message}`;
    });
    child.on('close', (code, signal) => {
      if (proc.exit !== undefined) return;
      proc.exit = { code, signal };
      markGone();
      onExit?.(proc);
    });
    return proc;
  }

  /** Runs `binary args` to completion (version, validate). */
  async function runOnce(binary: string, args: string[], timeoutMs: number): Promise<{ ok: boolean; output: string }> {
    const proc = launch(binary, args, -1);
    const timer = clock.setTimer(timeoutMs, () => proc.child.kill('SIGKILL'));
    await proc.gone;
    timer.cancel();
    return { ok: proc.exit?.code === 0, output: proc.output() };
  }

  async function readVersion(binary: string): Promise<void> {
    if (versionOf === binary && version !== undefined) return;
    const { output } = await runOnce(binary, ['--version'], 10_000);
    const parsed = parseEnvoyVersion(output);
    if (parsed === undefined) log.warn('could not read the Envoy version', { binary, output: lastLines(output, 2) });
    version = parsed;
    versionOf = binary;
  }

  /** Polls probe (each POLL_MS of the clock) until it gives a value; fails when proc exits or after startTimeoutMs. */
  function waitWhileAlive<T>(proc: Proc, what: string, probe: () => Promise<T | undefined>): Promise<T> {
    const deadline = clock.now() + startTimeoutMs;
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const finish = (fn: () => void) => {
        if (settled) return;
        settled = true;
        fn();
      };
      const exited = () => new Error(`Envoy exited (${describeExit(proc.exit ?? { code: null, signal: null })}) before ${what}`);
      void proc.gone.then(() => finish(() => reject(exited())));
      const attempt = async () => {
        if (settled) return;
        let value: T | undefined;
        try {
          value = await probe();
        } catch {
          value = undefined;
        }
        if (proc.exit !== undefined) return finish(() => reject(exited()));
        if (value !== undefined) return finish(() => resolve(value));
        if (clock.now() >= deadline) return finish(() => reject(new Error(`timed out after ${startTimeoutMs} ms waiting for ${what}`)));
        clock.setTimer(POLL_MS, () => void attempt());
      };
      void attempt();
    });
  }

  const readAdminAddress = (procEpoch: number) => async () => {
    const text = (await readFile(adminAddressPath(workDir, procEpoch), 'utf8').catch(() => '')).trim();
    return text === '' ? undefined : text;
  };

  async function writeBootstrap(fileEpoch: number, bootstrap: Record<string, unknown>): Promise<string> {
    const file = bootstrapPath(workDir, fileEpoch);
    await writeFile(file, `${JSON.stringify(bootstrap, null, 2)}\n`);
    await rm(adminAddressPath(workDir, fileEpoch), { force: true });
    return file;
  }

  const argsFor = (procEpoch: number) =>
    envoyArgs({ workDir, epoch: procEpoch, baseId, drainTimeMs: options.drainTimeMs, parentShutdownMs, concurrency, logLevel });

  function onExit(proc: Proc): void {
    const exit = proc.exit ?? { code: null, signal: null };
    const fields = { epoch: proc.epoch, pid: proc.pid, code: exit.code, signal: exit.signal };
    if (retiring.delete(proc)) {
      log.info('old Envoy epoch exited', fields);
      return;
    }
    if (proc === candidate) {
      lastExit = { ...exit, at: clock.now() };
      return; // reload() reports it
    }
    if (proc !== current) return;
    if (candidate !== undefined) {
      // The parent of a hot restart leaves on its own once the child is up: expected.
      log.info('old Envoy epoch exited during hot restart', fields);
      current = undefined;
      leftDuringHotRestart = proc;
      return;
    }
    lastExit = { ...exit, at: clock.now() };
    if (stopping || initialStart) return; // stop() or start() handles it
    crashed(proc);
  }

  function crashed(proc: Pick<Proc, 'epoch' | 'pid' | 'startedAt' | 'exit' | 'output'>): void {
    const exit = proc.exit ?? { code: null, signal: null };
    current = undefined;
    adminAddress = undefined;
    if (clock.now() - proc.startedAt >= stableAfterMs) failures = 0;
    const delay = backoffCeiling(options.backoff, failures);
    failures++;
    epoch = 0;
    state = 'backoff';
    nextRestartAt = clock.now() + delay;
    log.error('Envoy exited unexpectedly; restarting after a backoff', {
      epoch: proc.epoch,
      pid: proc.pid,
      code: exit.code,
      signal: exit.signal,
      restartInMs: delay,
      output: lastLines(proc.output()),
    });
    // Old epochs still draining hold the base id that epoch 0 is about to take.
    for (const old of retiring) old.child.kill('SIGTERM');
    emit('exited', describeExit(exit));
    emit('restarting', `in ${delay} ms`);
    backoffTimer = clock.setTimer(delay, () => {
      backoffTimer = undefined;
      void restart();
    });
  }

  async function restart(): Promise<void> {
    nextRestartAt = undefined;
    if (stopping) return;
    for (const old of retiring) {
      const timer = clock.setTimer(KILL_AFTER_MS, () => old.child.kill('SIGKILL'));
      await old.gone;
      timer.cancel();
    }
    if (stopping) return;
    restarts++;
    log.info('restarting Envoy', { restarts });
    await startEpochZero();
  }

  /** bringUp() whose failures become crashes (and so backoff restarts); true when it runs. */
  async function startEpochZero(): Promise<boolean> {
    let ok = false;
    startup = bringUp().then(
      () => {
        ok = true;
      },
      (err) => {
        if (stopping) return;
        if (current === undefined && state === 'starting') {
          // Failed before a process ran (the bootstrap file could not be written): retry like a crash.
          const why = `could not start: ${(err as Error).message}`;
          crashed({ epoch: 0, pid: undefined, startedAt: clock.now(), exit: { code: null, signal: null }, output: () => why });
        } else if (current !== undefined && current.exit === undefined) {
          // A hung start is killed and becomes a crash; an exit already was one.
          log.error('Envoy did not write its admin address in time; killing it', { error: err });
          current.child.kill('SIGKILL');
        }
      },
    );
    await startup;
    return ok;
  }

  /** Epoch 0 from the current settings; resolves once it wrote its admin address. */
  async function bringUp(): Promise<void> {
    state = 'starting';
    epoch = 0;
    hotRestartBroken = false; // epoch 0 makes Envoy's shared memory afresh
    await writeBootstrap(0, settings.bootstrap);
    const proc = launch(settings.binary, argsFor(0), 0, onExit);
    current = proc;
    const address = await waitWhileAlive(proc, 'writing its admin address', readAdminAddress(0));
    if (proc !== current || proc.exit !== undefined || stopping) throw new Error('Envoy went away while starting');
    adminAddress = address;
    state = 'running';
    log.info('Envoy started', { pid: proc.pid, epoch: 0, adminAddress: address, version });
    emit('started');
  }

  async function start(): Promise<void> {
    if (stopInFlight !== undefined) await stopInFlight;
    if (state !== 'stopped') return startup;
    stopping = false;
    failures = 0;
    state = 'starting';
    initialStart = true;
    const run = (async () => {
      try {
        await mkdir(workDir, { recursive: true });
        settings = { ...settings, binaryId: await binaryIdentity(settings.binary) };
        await readVersion(settings.binary);
        await bringUp();
      } catch (err) {
        const proc = current;
        current = undefined;
        adminAddress = undefined;
        if (proc !== undefined && proc.exit === undefined) {
          proc.child.kill('SIGKILL');
          await proc.gone;
        }
        if (!stopping) state = 'stopped';
        const output = proc === undefined ? '' : lastLines(proc.output(), 10);
        log.error('Envoy did not start', { error: err, output });
        throw new MeshError('MESH_E_PROCESS_START', `Envoy did not start: ${(err as Error).message}${output ? `\n${output}` : ''}`, {
          details: { binary: settings.binary, workDir },
          cause: err,
        });
      } finally {
        initialStart = false;
      }
    })();
    startup = run.catch(() => {});
    return run;
  }

  async function hotRestart(next: Settings): Promise<'hot-restarted' | 'unchanged'> {
    if (startup !== undefined) await startup;
    if (
      // Sorted keys: key order alone never triggers a hot restart.
      stableJson(next.bootstrap) === stableJson(settings.bootstrap) &&
      next.binary === settings.binary &&
      next.binaryId === settings.binaryId
    ) {
      return 'unchanged';
    }
    const keep = (why: string) => {
      settings = next;
      log.info(`Envoy settings changed while ${why}; the next start uses them`, { state });
      return 'unchanged' as const;
    };
    if (state !== 'running' || current === undefined || stopping) return keep(`Envoy is ${state}`);

    const nextEpoch = epoch + 1;
    const file = await writeBootstrap(nextEpoch, next.bootstrap);
    const check = await runOnce(next.binary, validateArgs(file), startTimeoutMs);
    if (!check.ok) {
      const why = lastLines(check.output, 3);
      log.error('Envoy rejected the new bootstrap; the running Envoy keeps the previous one', { epoch, output: why });
      throw new MeshError('MESH_E_ENVOY_RELOAD', `Envoy rejected the new bootstrap; the running Envoy keeps the previous one: ${why}`, {
        details: { epoch, binary: next.binary },
      });
    }
    if (state !== 'running' || current === undefined || stopping) return keep(`Envoy is ${state}`);
    if (hotRestartBroken) return coldRestart(current, next);

    const old = current;
    state = 'hot-restarting';
    leftDuringHotRestart = undefined;
    const proc = launch(next.binary, argsFor(nextEpoch), nextEpoch, onExit);
    candidate = proc;
    log.info('hot-restarting Envoy', { epoch: nextEpoch, pid: proc.pid, parentPid: old.pid });
    let address: string;
    try {
      address = await waitWhileAlive(proc, 'writing its admin address', readAdminAddress(nextEpoch));
      // Admin answers only once the main loop runs, that is after the whole bootstrap loaded.
      await waitWhileAlive(proc, 'its admin API answering', async () => ((await adminAnswers(admin, address)) ? true : undefined));
      if (stopping) throw new Error('the supervisor is stopping');
    } catch (err) {
      candidate = undefined;
      // SIGKILL, not SIGTERM: a child shutting down cleanly tells its parent to terminate too.
      if (proc.exit === undefined) proc.child.kill('SIGKILL');
      await proc.gone;
      const output = lastLines(proc.output());
      log.error('Envoy hot restart failed', { epoch: nextEpoch, error: err, output });
      hotRestartBroken = true;
      if (!stopping) {
        const orphan = current === undefined ? leftDuringHotRestart : undefined;
        if (orphan !== undefined) crashed(orphan);
        else {
          state = 'running';
          if (adminAddress !== undefined && !(await adminAnswers(admin, adminAddress))) {
            log.warn("the failed hot restart shut the old epoch's admin API down; it keeps serving, the next reload restarts it", {
              epoch,
              pid: current?.pid,
            });
            adminAddress = undefined;
          }
        }
      }
      leftDuringHotRestart = undefined;
      throw new MeshError(
        'MESH_E_ENVOY_RELOAD',
        `Envoy hot restart to epoch ${nextEpoch} failed: ${(err as Error).message}${output ? `\n${output}` : ''}`,
        {
          details: { epoch: nextEpoch, binary: next.binary },
          cause: err,
        },
      );
    }
    candidate = undefined;
    leftDuringHotRestart = undefined;
    if (current === old && old.exit === undefined) {
      // Envoy shuts the old epoch down after --parent-shutdown-time-s; this is only a safety net.
      retiring.add(old);
      clock.setTimer(parentShutdownMs + RETIRE_GRACE_MS, () => {
        if (old.exit !== undefined) return;
        log.warn('old Envoy epoch outlived its parent shutdown time; terminating it', { epoch: old.epoch, pid: old.pid });
        old.child.kill('SIGTERM');
      });
    }
    current = proc;
    epoch = nextEpoch;
    adminAddress = address;
    settings = next;
    state = 'running';
    if (versionOf !== next.binary) await readVersion(next.binary).catch(() => {});
    log.info('Envoy hot-restarted', { epoch, pid: proc.pid, parentPid: old.pid, adminAddress: address, version });
    emit('hot-restarted', `epoch ${epoch}`);
    return 'hot-restarted';
  }

  /** Replaces a running Envoy that can no longer hot-restart: stop it, then epoch 0 with the new settings. */
  async function coldRestart(old: Proc, next: Settings): Promise<'hot-restarted'> {
    log.warn('Envoy cannot hot-restart after an earlier failed attempt; restarting it cold (connections are cut)', {
      epoch,
      pid: old.pid,
    });
    current = undefined;
    adminAddress = undefined;
    state = 'starting';
    await terminate([old]);
    settings = next;
    hotRestartBroken = false;
    if (stopping) throw new MeshError('MESH_E_ENVOY_RELOAD', 'the supervisor stopped during a cold restart of Envoy');
    if (versionOf !== next.binary) await readVersion(next.binary).catch(() => {});
    if (!(await startEpochZero())) {
      throw new MeshError('MESH_E_ENVOY_RELOAD', 'Envoy did not come back from a cold restart; it is restarted with backoff', {
        details: { binary: next.binary },
      });
    }
    return 'hot-restarted';
  }

  function reload(next: { bootstrap?: Record<string, unknown>; binary?: string }): Promise<'hot-restarted' | 'unchanged'> {
    const run = reloads.then(async () => {
      const binary = next.binary ?? settings.binary;
      return hotRestart({ bootstrap: next.bootstrap ?? settings.bootstrap, binary, binaryId: await binaryIdentity(binary) });
    });
    reloads = run.catch(() => {});
    return run;
  }

  /** Graceful drain through admin, then wait until no downstream connection is left or drainTimeMs passed. */
  async function drain(proc: Proc, address: string): Promise<void> {
    try {
      await drainListeners(admin, address);
    } catch (err) {
      log.warn('could not drain Envoy listeners; stopping it anyway', { error: err });
      return;
    }
    const deadline = clock.now() + options.drainTimeMs;
    log.info('draining Envoy listeners', { pid: proc.pid, drainTimeMs: options.drainTimeMs });
    for (;;) {
      if (proc.exit !== undefined) return;
      let active: number;
      try {
        active = await activeConnections(admin, address);
      } catch (err) {
        log.warn('could not read Envoy connection stats; stopping it anyway', { error: err });
        return;
      }
      if (active === 0) return;
      const left = deadline - clock.now();
      if (left <= 0) {
        log.info('drain time is over with connections still open', { active });
        return;
      }
      await Promise.race([sleep(Math.min(DRAIN_POLL_MS, left)), proc.gone]);
    }
  }

  async function terminate(procs: Proc[]): Promise<void> {
    for (const proc of procs) proc.child.kill('SIGTERM');
    const timer = clock.setTimer(KILL_AFTER_MS, () => {
      for (const proc of procs) {
        if (proc.exit !== undefined) continue;
        log.warn('Envoy did not exit after SIGTERM; sending SIGKILL', { pid: proc.pid, epoch: proc.epoch });
        proc.child.kill('SIGKILL');
      }
    });
    await Promise.all(procs.map((proc) => proc.gone));
    timer.cancel();
  }

  async function doStop(): Promise<void> {
    stopping = true;
    backoffTimer?.cancel();
    backoffTimer = undefined;
    nextRestartAt = undefined;
    const alive = () =>
      [current, candidate, leftDuringHotRestart, ...retiring].filter((p): p is Proc => p !== undefined && p.exit === undefined);
    if (alive().length > 0) {
      state = 'draining';
      const proc = current;
      if (proc !== undefined && adminAddress !== undefined && candidate === undefined) await drain(proc, adminAddress);
      await terminate(alive());
    }
    current = undefined;
    adminAddress = undefined;
    // Envoy leaves its hot-restart shared memory behind; with every process of this base id gone, remove it.
    if (options.spawn === undefined) await rm(envoySharedMemoryPath(options.baseId), { force: true }).catch(() => undefined);
    if (state !== 'stopped') {
      state = 'stopped';
      log.info('Envoy stopped');
      emit('stopped');
    }
  }

  return {
    start,
    reload,
    stop() {
      stopInFlight ??= doStop().finally(() => {
        stopInFlight = undefined;
      });
      return stopInFlight;
    },
    status,
    onEvent(listener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
  };
}
