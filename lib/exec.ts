/**
 * Runs a program to completion and returns its output. The one place external
 * programs (pip, go, ip, iptables-restore, ...) are executed; callers build
 * argument arrays, never shell strings.
 */
import { spawn } from 'node:child_process';
import { MeshError } from './errors.js';

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  input?: string;
  timeoutMs?: number;
  /** Called with each chunk of stderr as it arrives (progress of long work). */
  onStderr?: (chunk: string) => void;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function run(command: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let timer: NodeJS.Timeout | undefined;
    if (options.timeoutMs !== undefined) {
      timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
    }
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
      options.onStderr?.(chunk);
    });
    child.on('error', (err) => {
      if (timer) clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    if (child.stdin !== null) {
      // A program may exit without reading its input; that is its answer, not our error.
      child.stdin.on('error', () => {});
      child.stdin.end(options.input);
    }
  });
}

/** Like run, but a non-zero exit becomes a MeshError with the command and its stderr. */
export async function runChecked(
  command: string,
  args: readonly string[],
  code: ConstructorParameters<typeof MeshError>[0],
  options: RunOptions = {},
): Promise<RunResult> {
  let result: RunResult;
  try {
    result = await run(command, args, options);
  } catch (err) {
    throw new MeshError(code, `could not run ${command}: ${(err as Error).message}`, {
      details: { command, args: [...args] },
      cause: err,
    });
  }
  if (result.code !== 0) {
    const why = result.signal !== null ? `was killed by ${result.signal}` : `exited with ${result.code}`;
    const tail = result.stderr.trim().split('\n').slice(-15).join('\n');
    throw new MeshError(code, `${command} ${args.join(' ')} ${why}${tail ? `:\n${tail}` : ''}`, {
      details: { command, args: [...args], exitCode: result.code },
    });
  }
  return result;
}
