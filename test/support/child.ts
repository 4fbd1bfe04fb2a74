/** A long-running child process (Consul, Envoy) with its output kept for diagnostics. */
import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

export interface ManagedChild {
  readonly process: ChildProcess;
  readonly pid: number;
  /** The last lines of stdout and stderr, for error messages. */
  output(): string;
  /** True once the process has exited. */
  exited(): boolean;
  /** SIGTERM, then SIGKILL after graceMs; resolves when the process is gone. */
  stop(graceMs?: number): Promise<void>;
}

const KEEP = 64 * 1024;

/**
 * The environment for programs a test starts: without tap's coverage and
 * process-info hooks. A compiled copy of our code in a child would report
 * coverage for the same source files with different statement maps, and
 * merging the two lost the in-process coverage. tap re-adds its hook to the
 * environment of every spawn, so untracked() also starts the program through
 * `env -u NODE_OPTIONS`.
 */
export function untracked(command: string, args: readonly string[]): [string, string[]] {
  return ['env', ['-u', 'NODE_OPTIONS', command, ...args]];
}

/** True while a process with this pid exists. */
export function processAlive(pid: number | undefined): boolean {
  if (pid === undefined) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The fields of /proc/<pid>/stat after the command name (state, ppid, ...); undefined once the process is gone. */
export function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/**
 * A process as it was when seen: its pid and its start time (field 22 of
 * /proc/<pid>/stat, in clock ticks since boot). pid_max here is 32768 and a
 * test run starts thousands of processes, so a pid seen earlier may name
 * another test's process by now: kill through killIfSame, never process.kill.
 */
export interface ProcessRef {
  readonly pid: number;
  readonly start: string;
}

/** The process now running under pid; undefined when there is none (or it is a zombie). */
export function processRef(pid: number | undefined): ProcessRef | undefined {
  if (pid === undefined) return undefined;
  const fields = statFields(pid);
  if (fields === undefined || fields[0] === 'Z') return undefined;
  const start = fields[19];
  return start === undefined ? undefined : { pid, start };
}

/** True while the process ref names still runs (the same pid with the same start time). */
export function sameProcess(ref: ProcessRef): boolean {
  return processRef(ref.pid)?.start === ref.start;
}

/** Signals the process ref names if it still runs; a pid reused by another process is left alone. */
export function killIfSame(ref: ProcessRef | undefined, signal: NodeJS.Signals): boolean {
  if (ref === undefined || !sameProcess(ref)) return false;
  try {
    process.kill(ref.pid, signal);
    return true;
  } catch {
    return false;
  }
}

/** Live processes (from /proc) with an argument containing `fragment`, e.g. an agent's Envoy folder. */
export function processesWith(fragment: string): Array<{ pid: number; args: string[] }> {
  const found: Array<{ pid: number; args: string[] }> = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let args: string[];
    try {
      args = readFileSync(`/proc/${entry}/cmdline`, 'utf8')
        .split('\0')
        .filter((a) => a !== '');
    } catch {
      continue; // gone meanwhile
    }
    if (args.some((a) => a.includes(fragment))) found.push({ pid: Number(entry), args });
  }
  return found;
}

export function childEnv(base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(base)) {
    if (key === 'NODE_V8_COVERAGE' || key === 'NODE_OPTIONS' || key.startsWith('_TAPJS') || key.startsWith('TAP_')) continue;
    env[key] = value;
  }
  return env;
}

export function startChild(
  command: string,
  args: readonly string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): ManagedChild {
  const [program, argv] = untracked(command, args);
  const child = spawn(program, argv, { cwd: options.cwd, env: options.env ?? childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const keep = (chunk: Buffer) => {
    out = (out + chunk.toString('utf8')).slice(-KEEP);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  let done = false;
  const closed = new Promise<void>((resolve) => {
    child.once('exit', () => {
      done = true;
      resolve();
    });
    child.once('error', (err) => {
      out += `\nspawn error: ${err.message}`;
      done = true;
      resolve();
    });
  });
  return {
    process: child,
    pid: child.pid ?? -1,
    output: () => out,
    exited: () => done,
    async stop(graceMs = 10_000) {
      if (done) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await closed;
      clearTimeout(timer);
    },
  };
}

/** Long-running children kept in start order; stopAll() stops them newest first (agents before their peers). */
export interface ChildKeeper {
  keep(child: ManagedChild): ManagedChild;
  /** Stops every kept child; returns them (so a test can check each exited). */
  stopAll(): Promise<ManagedChild[]>;
}

export function childKeeper(): ChildKeeper {
  const started: ManagedChild[] = [];
  return {
    keep(child) {
      started.push(child);
      return child;
    },
    async stopAll() {
      const stopping = started.splice(0).reverse();
      for (const c of stopping) await c.stop();
      return stopping;
    },
  };
}
