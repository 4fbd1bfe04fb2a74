/**
 * Reads the fenced blocks of a markdown document (pure), for the test that
 * runs the commands the docs show (test/integration/docs-commands.test.ts).
 *
 * The convention (docs/development.md, "Commands in the docs"):
 * - ```sh      commands the test runs, in order, one per line (a trailing "\" continues
 *              a line). A comment `# prints: TEXT` says the command's stdout contains
 *              TEXT; `# exits: N` that it exits N (default 0).
 * - ```console commands the test does not run (npm ci, npm test, systemctl, package
 *              installs), written as `$ command`; output may follow.
 * - ```text    output. Right after a sh block, ```text output is the exact stdout of
 *              that block's last command (UPDATE_GOLDEN=1 rewrites it).
 * - ```yaml file=PATH (any language) a file the test writes before the next command.
 * - ```bash, ```shell and ```zsh are refused: a command is either run or marked as not run.
 */

export interface FencedBlock {
  /** The language word of the info string (`sh`, `yaml`, ...), '' when none. */
  lang: string;
  /** `key=value` words after the language; a bare word is `key: ''`. */
  attrs: Readonly<Record<string, string>>;
  /** 1-based line of the opening fence. */
  line: number;
  /** 1-based lines of the first and last body line (last < first for an empty body). */
  bodyStart: number;
  bodyEnd: number;
  body: string;
}

const FENCE = /^( {0,3})(`{3,}|~{3,})(.*)$/;

export function fencedBlocks(markdown: string): FencedBlock[] {
  const lines = markdown.split('\n');
  const blocks: FencedBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = FENCE.exec(lines[i] ?? '');
    if (open === null) continue;
    const fence = open[2] ?? '```';
    const [lang = '', ...words] = (open[3] ?? '').trim().split(/\s+/);
    const attrs: Record<string, string> = {};
    for (const word of words) {
      const eq = word.indexOf('=');
      if (eq < 0) attrs[word] = '';
      else attrs[word.slice(0, eq)] = word.slice(eq + 1);
    }
    let end = i + 1;
    const closes = (line: string) => {
      const text = line.trim();
      return text.length >= fence.length && text === fence.charAt(0).repeat(text.length);
    };
    while (end < lines.length && !closes(lines[end] ?? '')) end++;
    const indent = open[1]?.length ?? 0;
    const body = lines.slice(i + 1, end).map((l) => l.slice(Math.min(indent, l.length - l.trimStart().length)));
    blocks.push({ lang, attrs, line: i + 1, bodyStart: i + 2, bodyEnd: end, body: body.join('\n') });
    i = end;
  }
  return blocks;
}

export interface ShellCommand {
  /** The command as bash gets it: continuation lines joined, the `# prints:`/`# exits:` comment removed. */
  text: string;
  /** 1-based line in the block's body where the command starts. */
  line: number;
  /** Text the command's stdout must contain. */
  prints?: string;
  exits: number;
}

/** The commands of a sh block: one per line, "\" continues, blank and comment-only lines skipped. */
export function shellCommands(body: string): ShellCommand[] {
  const commands: ShellCommand[] = [];
  const lines = body.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const start = i;
    let text = lines[i] ?? '';
    while (/\\\s*$/.test(text) && i + 1 < lines.length) {
      i++;
      text = `${text.replace(/\\\s*$/, '').trimEnd()} ${(lines[i] ?? '').trim()}`;
    }
    if (text.trim() === '' || text.trim().startsWith('#')) continue;
    const command: ShellCommand = { text: text.trim(), line: start + 1, exits: 0 };
    const marker = /\s#\s*(prints|exits):\s*(.*)$/.exec(text);
    if (marker !== null) {
      command.text = text.slice(0, marker.index).trim();
      const value = (marker[2] ?? '').trim();
      if (marker[1] === 'prints') command.prints = value.replace(/^"(.*)"$/, '$1');
      else command.exits = Number(value);
    }
    commands.push(command);
  }
  return commands;
}

/** Fence languages that would hide a command from the test. */
export const REFUSED_LANGS = ['bash', 'shell', 'zsh'];

/**
 * The words of a command up to the first shell operator (redirection, pipe,
 * `;`, `&`, comment), with simple quotes removed: enough to tell which of our
 * programs and commands a doc line runs.
 */
export function shellWords(text: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  let quote: string | undefined;
  for (const ch of text) {
    if (quote !== undefined) {
      if (ch === quote) quote = undefined;
      else word = (word ?? '') + ch;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
      word ??= '';
    } else if (/\s/.test(ch)) {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else if ('><|;&'.includes(ch) || (ch === '#' && word === undefined)) {
      if (word !== undefined) words.push(word);
      return words;
    } else {
      word = (word ?? '') + ch;
    }
  }
  if (word !== undefined) words.push(word);
  return words;
}

/** A block body with its lines replaced: for UPDATE_GOLDEN=1 rewrites of ```text output blocks. */
export function replaceBody(markdown: string, block: FencedBlock, body: string): string {
  const lines = markdown.split('\n');
  const next = body.endsWith('\n') ? body.slice(0, -1) : body;
  lines.splice(block.bodyStart - 1, block.bodyEnd - block.bodyStart + 1, ...(next === '' ? [] : next.split('\n')));
  return lines.join('\n');
}
