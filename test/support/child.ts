/** A long-running child process (Consul, Envoy) with its output kept for diagnostics. */
import { type ChildProcess, spawn } from 'node:child_process';

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

export function startChild(
  command: string,
  args: readonly string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): ManagedChild {
  const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
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
