/**
 * Where the command words are in argv (pure). Options may come before, between
 * or after the words of a command: `meshctl --data-dir D ca bundle`,
 * `meshctl ca --data-dir D bundle` and `meshctl ca bundle --data-dir D` all
 * name `ca bundle`. Which tokens are option values depends on the command's
 * options, so every command is tried with its own options, and the longest
 * command whose words start the remaining positionals wins: in
 * `meshctl token create --node ca` the `ca` stays the value of `--node`.
 */
import { parseArgs } from 'node:util';
import type { Command, OptionSpec, Program } from './cli.js';

export type Resolved =
  /** A command; `args` is argv without the command words, `help` when -h/--help is among its options. */
  | { kind: 'command'; command: Command; args: string[]; help: boolean }
  /** `--help`, `-h` or `help [command]`: usage of the program, or of one command. */
  | { kind: 'help'; command?: Command }
  | { kind: 'version' }
  /** Nothing at all on the command line. */
  | { kind: 'empty' }
  /** Options but no command word. */
  | { kind: 'missing' }
  /** Words that name no command; `group` lists the commands that share its first word. */
  | { kind: 'unknown'; words: string[]; group: Command[] };

interface Scan {
  /** Positionals before a `--` terminator, with their index in argv. */
  words: Array<{ value: string; index: number }>;
  /** Names of the options present (`help`, `h`, `version`, ...). */
  options: Set<string>;
}

function scan(argv: readonly string[], options: OptionSpec): Scan {
  // strict: false never throws; options unknown to this command read as booleans.
  const { tokens } = parseArgs({ args: [...argv], options, strict: false, allowPositionals: true, tokens: true });
  const words: Scan['words'] = [];
  const present = new Set<string>();
  let terminated = false;
  for (const token of tokens) {
    if (token.kind === 'option-terminator') terminated = true;
    else if (token.kind === 'option') present.add(token.name);
    else if (!terminated) words.push({ value: token.value, index: token.index });
  }
  return { words, options: present };
}

const wordsOf = (command: Command) => command.name.split(' ');

function startsWith(words: readonly string[], prefix: readonly string[]): boolean {
  return prefix.every((w, i) => words[i] === w);
}

/** The longest command whose words start `words`. */
function longestMatch(program: Program, words: readonly string[]): Command | undefined {
  let best: Command | undefined;
  for (const command of program.commands) {
    if (startsWith(words, wordsOf(command)) && (best === undefined || wordsOf(command).length > wordsOf(best).length)) best = command;
  }
  return best;
}

/** Every option of every command: to find the words of a command line that names none. */
function allOptions(program: Program): OptionSpec {
  const union: OptionSpec = {};
  for (const command of program.commands) {
    for (const [name, spec] of Object.entries(command.options)) {
      // A value-taking spelling wins: it keeps a value from being read as a command word.
      if (union[name]?.type !== 'string') union[name] = spec;
    }
  }
  return union;
}

function commandIn(argv: readonly string[], command: Command, s: Scan): Resolved {
  const drop = new Set(s.words.slice(0, wordsOf(command).length).map((w) => w.index));
  return { kind: 'command', command, args: argv.filter((_, i) => !drop.has(i)), help: isHelp(s.options) };
}

const isHelp = (options: Set<string>) => options.has('help') || options.has('h');

export function resolveCommand(program: Program, argv: readonly string[]): Resolved {
  if (argv.length === 0) return { kind: 'empty' };
  if (argv[0] === '--version') return { kind: 'version' };
  let found: { command: Command; scan: Scan } | undefined;
  for (const command of program.commands) {
    const s = scan(argv, command.options);
    const names = wordsOf(command);
    const values = s.words.map((w) => w.value);
    if (startsWith(values, names) && (found === undefined || names.length > wordsOf(found.command).length)) found = { command, scan: s };
  }
  if (found !== undefined) return commandIn(argv, found.command, found.scan);
  const s = scan(argv, allOptions(program));
  const words = s.words.map((w) => w.value);
  // The words name a command once the options of the other commands take their values:
  // an option that command does not have (its strict parse will name it).
  const named = longestMatch(program, words);
  if (named !== undefined) return commandIn(argv, named, s);
  const [first] = words;
  if (first === undefined) {
    if (isHelp(s.options)) return { kind: 'help' };
    if (s.options.has('version')) return { kind: 'version' };
    return { kind: 'missing' };
  }
  if (first === 'help') {
    const target = longestMatch(program, words.slice(1));
    return target === undefined ? { kind: 'help' } : { kind: 'help', command: target };
  }
  const group = program.commands.filter((c) => wordsOf(c).length > 1 && wordsOf(c)[0] === first);
  return { kind: 'unknown', words: group.length > 0 ? words.slice(0, 2) : [first], group };
}
