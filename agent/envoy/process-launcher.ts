/**
 * Envoy processes as the supervisor sees them: spawned through an injected
 * function, their output kept (a 32 KB tail, complete lines to a callback),
 * their exit reported once, after the output ended (also for a spawn that
 * failed: Node reports 'error' then 'close'). Plus a run to completion with a
 * timeout (`--version`, `--mode validate`) that an AbortSignal can cut short,
 * and termination: SIGTERM, then SIGKILL if the process is still there after
 * 5 s. All timers go through the injected clock.
 */
import { spawn as nodeSpawn } from 'node:child_process';
import type { Clock } from '../../lib/clock.js';

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

export type SpawnFn = (binary: string, args: string[]) => ChildLike;

export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface LaunchedProcess {
  readonly pid: number | undefined;
  /** Resolves once the process is gone. */
  readonly gone: Promise<ProcessExit>;
  exit(): ProcessExit | undefined;
  /** Runs fn synchronously when the process is gone (at once if it is). */
  onGone(fn: () => void): void;
  output(): string;
  /** Sends a signal; nothing once the process is gone. */
  kill(signal: NodeJS.Signals): void;
}

export interface LaunchOptions {
  /** Each complete line of output. */
  onLine?: (line: string) => void;
  /** Called once, synchronously, when the process is gone. */
  onExit?: (exit: ProcessExit) => void;
}

const KEEP_OUTPUT = 32 * 1024;
export const KILL_AFTER_MS = 5_000;

export const defaultSpawn: SpawnFn = (binary, args) => nodeSpawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });

/**
 * Spawns through `setpriv <args> -- binary ...` (envoy-run-as.ts): setpriv
 * execs Envoy in place, so the pid, signals and output are Envoy's own.
 */
export function setprivSpawn(setprivArgs: readonly string[], base: SpawnFn = defaultSpawn, setpriv = 'setpriv'): SpawnFn {
  return (binary, args) => base(setpriv, [...setprivArgs, '--', binary, ...args]);
}

export function launch(spawn: SpawnFn, binary: string, args: string[], options: LaunchOptions = {}): LaunchedProcess {
  const child = spawn(binary, args);
  let out = '';
  let exit: ProcessExit | undefined;
  let markGone: (exit: ProcessExit) => void = () => {};
  const goneListeners: Array<() => void> = [];
  const gone = new Promise<ProcessExit>((resolve) => {
    markGone = resolve;
  });
  const capture = (stream: OutputStream | null | undefined) => {
    let partial = '';
    stream?.on('data', (chunk) => {
      const text = chunk.toString();
      out = (out + text).slice(-KEEP_OUTPUT);
      const lines = (partial + text).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) if (line.trim() !== '') options.onLine?.(line);
    });
  };
  capture(child.stdout);
  capture(child.stderr);
  child.on('error', (err) => {
    out += `\nspawn error: ${err.message}`;
  });
  child.on('close', (code, signal) => {
    if (exit !== undefined) return;
    exit = { code, signal };
    markGone(exit);
    options.onExit?.(exit);
    for (const fn of goneListeners.splice(0)) fn();
  });
  return {
    pid: child.pid,
    gone,
    exit: () => exit,
    onGone(fn) {
      if (exit === undefined) goneListeners.push(fn);
      else fn();
    },
    output: () => out,
    kill(signal) {
      if (exit === undefined) child.kill(signal);
    },
  };
}

/** Runs `binary args` to its end; killed after timeoutMs or when `signal` aborts. */
export async function runToCompletion(
  spawn: SpawnFn,
  clock: Clock,
  binary: string,
  args: string[],
  options: { timeoutMs: number; signal?: AbortSignal },
): Promise<{ ok: boolean; output: string }> {
  if (options.signal?.aborted) return { ok: false, output: 'aborted before it ran' };
  const proc = launch(spawn, binary, args);
  const kill = () => proc.kill('SIGKILL');
  const timer = clock.setTimer(options.timeoutMs, kill);
  options.signal?.addEventListener('abort', kill, { once: true });
  proc.onGone(() => {
    timer.cancel();
    options.signal?.removeEventListener('abort', kill);
  });
  const exit = await proc.gone;
  return { ok: exit.code === 0, output: proc.output() };
}

/** SIGTERM now; SIGKILL after 5 s unless the process is gone by then. */
export function terminate(proc: LaunchedProcess, clock: Clock, onKill: () => void): void {
  if (proc.exit() !== undefined) return;
  const timer = clock.setTimer(KILL_AFTER_MS, () => {
    if (proc.exit() !== undefined) return;
    onKill();
    proc.kill('SIGKILL');
  });
  proc.onGone(() => timer.cancel());
  proc.kill('SIGTERM');
}

/** The last few lines of a process's output, for log fields and error messages. */
export function lastLines(output: string, n = 5): string {
  return output.trim().split('\n').slice(-n).join('\n');
}
