/**
 * The command-line edge shared by mesh-agent, mesh-controlplane and meshctl:
 * `<program> <command> [options]`, `--help` everywhere, `--version`, and
 * MeshError codes mapped to exit codes (usage errors 2, everything else 1).
 * Commands get their streams injected so tests run them in-process.
 */
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { MeshError, toMeshError } from './errors.js';

export interface CliIo {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
}

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

export interface Command {
  name: string;
  summary: string;
  /** Usage text after "Usage: <program> <name>", including the options list. */
  usage: string;
  options: OptionSpec;
  allowPositionals?: boolean;
  run(args: { values: Record<string, unknown>; positionals: string[]; io: CliIo }): Promise<number>;
}

export interface Program {
  name: string;
  summary: string;
  version: string;
  commands: readonly Command[];
}

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

export function programUsage(program: Program): string {
  const width = Math.max(8, ...program.commands.map((c) => c.name.length)) + 2;
  // Multi-word commands ("ca rotate") are listed like single words.
  const lines = [
    `Usage: ${program.name} <command> [options]`,
    '',
    program.summary,
    '',
    'Commands:',
    ...program.commands.map((c) => `  ${c.name.padEnd(width)}${c.summary}`),
    `  ${'help'.padEnd(width)}show help for a command (also: <command> --help)`,
    '',
    'Options:',
    '  -h, --help     show this help',
    '  --version      print the version',
    '',
  ];
  return lines.join('\n');
}

export function commandUsage(program: Program, command: Command): string {
  return `Usage: ${program.name} ${command.name} ${command.usage.trimEnd()}\n\n${command.summary}\n`;
}

/** The command whose (possibly multi-word) name starts argv; the longest name wins. */
function findCommand(program: Program, argv: readonly string[]): { command: Command; words: number } | undefined {
  let best: { command: Command; words: number } | undefined;
  for (const command of program.commands) {
    const words = command.name.split(' ');
    if (words.every((w, i) => argv[i] === w) && (best === undefined || words.length > best.words)) best = { command, words: words.length };
  }
  return best;
}

export function exitCodeFor(err: MeshError): number {
  return err.code === 'MESH_E_USAGE' ? EXIT_USAGE : EXIT_FAILURE;
}

export async function runCli(program: Program, argv: readonly string[], io: CliIo): Promise<number> {
  const [first] = argv;
  if (first === undefined || first === '--help' || first === '-h') {
    io.stdout.write(programUsage(program));
    return first === undefined ? EXIT_USAGE : EXIT_OK;
  }
  if (first === '--version') {
    io.stdout.write(`${program.name} ${program.version}\n`);
    return EXIT_OK;
  }
  if (first === 'help') {
    const target = findCommand(program, argv.slice(1))?.command;
    io.stdout.write(target === undefined ? programUsage(program) : commandUsage(program, target));
    return EXIT_OK;
  }
  const found = findCommand(program, argv);
  const command = found?.command;
  const rest = argv.slice(found?.words ?? 1);
  try {
    if (command === undefined) {
      throw new MeshError(
        'MESH_E_USAGE',
        `unknown command ${JSON.stringify(first)}; run "${program.name} --help" for the list of commands`,
        { details: { command: first } },
      );
    }
    if (rest.includes('--help') || rest.includes('-h')) {
      io.stdout.write(commandUsage(program, command));
      return EXIT_OK;
    }
    let parsed: { values: Record<string, unknown>; positionals: string[] };
    try {
      parsed = parseArgs({ args: rest, options: command.options, allowPositionals: command.allowPositionals ?? false, strict: true });
    } catch (err) {
      throw new MeshError('MESH_E_USAGE', `${program.name} ${command.name}: ${(err as Error).message}`, { cause: err });
    }
    return await command.run({ ...parsed, io });
  } catch (err) {
    const e = toMeshError(err);
    io.stderr.write(`${program.name}: ${e.code}: ${e.message}\n`);
    if (e.code === 'MESH_E_USAGE' && command !== undefined) io.stderr.write(`\n${commandUsage(program, command)}`);
    return exitCodeFor(e);
  }
}

/** A `version` command, the same in every program. */
export function versionCommand(programName: string, version: string): Command {
  return {
    name: 'version',
    summary: 'print the version',
    usage: '[--json]\n\nOptions:\n  --json   print {"program","version"}\n',
    options: { json: { type: 'boolean' } },
    async run({ values, io }) {
      io.stdout.write(values.json ? `${JSON.stringify({ program: programName, version })}\n` : `${programName} ${version}\n`);
      return EXIT_OK;
    },
  };
}

/** Runs a program as the process: real argv and streams, exit code set. */
export function main(program: Program): void {
  runCli(program, process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr }).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`${program.name}: ${toMeshError(err).message}\n`);
      process.exitCode = EXIT_FAILURE;
    },
  );
}
