/**
 * The command-line edge shared by mesh-agent, mesh-controlplane and meshctl:
 * `<program> <command> [options]` (options also before or between the command
 * words, see cli-argv.ts), `--help` everywhere, `--version`, and
 * MeshError codes mapped to exit codes (usage errors 2, everything else 1).
 * Commands get their streams injected so tests run them in-process.
 */
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { resolveCommand } from './cli-argv.js';
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

export function exitCodeFor(err: MeshError): number {
  return err.code === 'MESH_E_USAGE' ? EXIT_USAGE : EXIT_FAILURE;
}

function unknownCommand(program: Program, words: string[], group: Command[]): MeshError {
  const named = JSON.stringify(words.join(' '));
  const hint =
    group.length > 0
      ? `; the commands that start with "${words[0]}" are: ${group.map((c) => c.name).join(', ')}`
      : `; run "${program.name} --help" for the list of commands`;
  return new MeshError('MESH_E_USAGE', `unknown command ${named}${hint}`, { details: { command: words.join(' ') } });
}

export async function runCli(program: Program, argv: readonly string[], io: CliIo): Promise<number> {
  const resolved = resolveCommand(program, argv);
  switch (resolved.kind) {
    case 'empty':
      io.stdout.write(programUsage(program));
      return EXIT_USAGE;
    case 'version':
      io.stdout.write(`${program.name} ${program.version}\n`);
      return EXIT_OK;
    case 'help':
      io.stdout.write(resolved.command === undefined ? programUsage(program) : commandUsage(program, resolved.command));
      return EXIT_OK;
    default:
  }
  const command = resolved.kind === 'command' ? resolved.command : undefined;
  try {
    if (resolved.kind === 'missing')
      throw new MeshError('MESH_E_USAGE', `no command given; run "${program.name} --help" for the list of commands`);
    if (resolved.kind === 'unknown') throw unknownCommand(program, resolved.words, resolved.group);
    if (resolved.help) {
      io.stdout.write(commandUsage(program, resolved.command));
      return EXIT_OK;
    }
    let parsed: { values: Record<string, unknown>; positionals: string[] };
    try {
      parsed = parseArgs({
        args: resolved.args,
        options: resolved.command.options,
        allowPositionals: resolved.command.allowPositionals ?? false,
        strict: true,
      });
    } catch (err) {
      throw new MeshError('MESH_E_USAGE', `${program.name} ${resolved.command.name}: ${(err as Error).message}`, { cause: err });
    }
    return await resolved.command.run({ ...parsed, io });
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
