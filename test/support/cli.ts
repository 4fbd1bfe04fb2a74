/** Runs a program's command line in-process with captured streams: what a user would see, and the exit code. */
import { type Program, runCli } from '../../lib/cli.js';

export interface CliResult {
  code: number;
  out: string;
  err: string;
}

export async function runProgram(program: Program, argv: string[]): Promise<CliResult> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(program, argv, {
    stdout: { write: (s: string) => out.push(s) },
    stderr: { write: (s: string) => err.push(s) },
  });
  return { code, out: out.join(''), err: err.join('') };
}
