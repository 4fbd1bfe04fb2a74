/** Runs a program's command line in-process with captured streams: what a user would see, and the exit code. */
import { type Program, runCli } from '../../lib/cli.js';

/** Captures what an in-process CLI run (or anything writing to stdout/stderr-like streams) writes. */
export function captureIo() {
  const out: string[] = [];
  const err: string[] = [];
  return {
    io: { stdout: { write: (s: string) => out.push(s) }, stderr: { write: (s: string) => err.push(s) } },
    out: () => out.join(''),
    err: () => err.join(''),
  };
}

export interface CliResult {
  code: number;
  out: string;
  err: string;
}

export async function runProgram(program: Program, argv: string[]): Promise<CliResult> {
  const captured = captureIo();
  const code = await runCli(program, argv, captured.io);
  return { code, out: captured.out(), err: captured.err() };
}
