/**
 * Every command in a ```sh block of README.md, docs/**.md and bench/README.md
 * runs, in order, per document, against the real programs (the built dist/),
 * a real control plane, agent, Envoy and Consul, with temporary paths and free
 * ports in place of the docs' (test/support/doc-world.ts). A doc in docs/
 * starts where the README's tour leaves off: the steps of the tour it needs
 * run first (test/support/doc-steps.ts). Exit codes are checked, `# prints:`
 * texts and ```text output blocks too; the CLI reference must have every
 * command's --help, the error reference every code, and links must resolve.
 * UPDATE_GOLDEN=1 rewrites the ```text output blocks from the programs.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { agentProgram } from '../../agent/program.js';
import { meshctlProgram } from '../../controlplane/cli/program.js';
import { controlplaneProgram } from '../../controlplane/program.js';
import { ERROR_CODES } from '../../lib/errors.js';
import { repoRoot } from '../../scripts/repo-root.js';
import { type FencedBlock, fencedBlocks, REFUSED_LANGS, replaceBody, type ShellCommand, shellCommands } from '../support/doc-blocks.js';
import { classifyCommand, classifyFile, preambleSteps, type Step } from '../support/doc-steps.js';
import { createDocWorld, type DocWorld } from '../support/doc-world.js';

t.setTimeout(1_200_000);

const root = repoRoot();

function markdownUnder(dir: string): string[] {
  return readdirSync(path.join(root, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.md'))
    .map((e) => path.relative(root, path.join(e.parentPath, e.name)))
    .sort();
}

const DOCS = ['README.md', ...markdownUnder('docs'), 'bench/README.md'];
/** MESH_DOCS=docs/reference/cli.md,README.md runs the commands of those documents only. */
const ONLY = process.env.MESH_DOCS?.split(',').filter((d) => d !== '');
const read = (doc: string) => readFileSync(path.join(root, doc), 'utf8');

type Item =
  | { kind: 'sh'; doc: string; n: number; block: FencedBlock; commands: ShellCommand[]; output?: FencedBlock }
  | { kind: 'file'; doc: string; block: FencedBlock; file: string };

function itemsOf(doc: string, markdown: string): Item[] {
  const blocks = fencedBlocks(markdown);
  const items: Item[] = [];
  let n = 0;
  for (const [i, block] of blocks.entries()) {
    if (block.lang === 'sh') {
      n++;
      const next = blocks[i + 1];
      const output = next?.lang === 'text' && 'output' in next.attrs ? next : undefined;
      items.push({ kind: 'sh', doc, n, block, commands: shellCommands(block.body), ...(output ? { output } : {}) });
    } else if (block.attrs.file !== undefined) {
      items.push({ kind: 'file', doc, block, file: block.attrs.file });
    }
  }
  return items;
}

function provides(item: Item): Step[] {
  return item.kind === 'file' ? classifyFile(item.file) : item.commands.flatMap((c) => classifyCommand(c.text).provides);
}

/** The README's blocks per step of the tour; file blocks belong to the step before them. */
function tourItems(steps: readonly Step[]): Item[] {
  const wanted = new Set(steps);
  const chosen: Item[] = [];
  let current: Step[] = [];
  for (const item of itemsOf('README.md', read('README.md'))) {
    const own = provides(item);
    if (own.length > 0) current = own;
    const belongs = own.length > 0 ? own : item.kind === 'file' ? current : [];
    if (belongs.some((s) => wanted.has(s))) chosen.push(item);
  }
  const missing = steps.filter((s) => !chosen.some((item) => provides(item).includes(s)));
  if (missing.length > 0) throw new Error(`the README tour has no block that sets up: ${missing.join(', ')}`);
  return chosen;
}

const where = (item: Item, command: ShellCommand) =>
  `${item.doc}, sh block ${item.kind === 'sh' ? item.n : '?'} (line ${item.block.bodyStart + command.line - 1}): ${command.text}`;

const normalize = (text: string) =>
  text
    .split('\n')
    .map((l) => l.trimEnd())
    .join('\n')
    .replace(/\n+$/, '');

/** Runs one item; false when a command failed (the rest of the document is skipped). */
async function runItem(t: Test, world: DocWorld, item: Item, rewrites: Array<{ block: FencedBlock; body: string }>): Promise<boolean> {
  if (item.kind === 'file') {
    await world.writeFile(item.file, item.block.body);
    return true;
  }
  let lastStdout = '';
  for (const command of item.commands) {
    const kind = classifyCommand(command.text);
    const text = world.substitute(command.text);
    if (kind.longRunning) {
      try {
        await world.start(text, kind.command ?? command.text);
      } catch (err) {
        t.fail(`${where(item, command)}\n${(err as Error).message}`);
        return false;
      }
      t.pass(`${where(item, command)}: running`);
      continue;
    }
    const result = await world.run(text);
    lastStdout = result.stdout;
    if (result.code !== command.exits) {
      t.fail(`${where(item, command)}: exit ${result.code}, expected ${command.exits}`, {
        stdout: result.stdout.slice(-2000),
        stderr: result.stderr.slice(-3000),
      });
      return false;
    }
    if (command.prints !== undefined && !result.stdout.includes(world.substitute(command.prints))) {
      t.fail(`${where(item, command)}: stdout lacks ${JSON.stringify(command.prints)}`, { stdout: result.stdout.slice(-2000) });
      return false;
    }
    t.pass(
      `${where(item, command)}: exit ${command.exits}${command.prints === undefined ? '' : `, prints ${JSON.stringify(command.prints)}`}`,
    );
  }
  if (item.output !== undefined) {
    if (process.env.UPDATE_GOLDEN === '1') rewrites.push({ block: item.output, body: `${normalize(lastStdout)}\n` });
    else
      t.equal(
        normalize(lastStdout),
        normalize(item.output.body),
        `${item.doc}, line ${item.output.line}: the output shown is the program's`,
      );
  }
  return true;
}

for (const doc of DOCS.filter((d) => ONLY === undefined || ONLY.includes(d))) {
  t.test(doc, async (t) => {
    const markdown = read(doc);
    const blocks = fencedBlocks(markdown);
    for (const block of blocks) {
      if (REFUSED_LANGS.includes(block.lang))
        t.fail(`${doc}:${block.line}: \`\`\`${block.lang}: use sh (run by the test) or console (not run)`);
      if (block.lang === 'sh' && block.body.split('\n').some((l) => l.startsWith('$ ')))
        t.fail(`${doc}:${block.line}: a sh block holds commands without "$ " prompts; use console for a transcript`);
    }
    for (const [i, block] of blocks.entries()) {
      if (block.lang === 'text' && 'output' in block.attrs && blocks[i - 1]?.lang !== 'sh')
        t.fail(`${doc}:${block.line}: a \`\`\`text output block must come right after a sh block`);
    }
    const items = itemsOf(doc, markdown);
    if (!items.some((i) => i.kind === 'sh')) {
      t.pass(`${doc}: no sh blocks`);
      return;
    }
    const needs = items.flatMap((i) => (i.kind === 'sh' ? i.commands.flatMap((c) => classifyCommand(c.text).needs) : []));
    const steps = preambleSteps(needs, items.flatMap(provides));
    const all = [...(doc === 'README.md' ? [] : tourItems(steps)), ...items];
    const runsAgent = all.some((i) => i.kind === 'sh' && i.commands.some((c) => classifyCommand(c.text).command === 'mesh-agent run'));
    if (steps.length > 0) t.comment(`${doc}: first the tour's steps ${steps.join(', ')}`);
    const world = await createDocWorld({ consul: runsAgent });
    let closed = false;
    t.teardown(async () => {
      if (!closed) await world.close();
    });
    const rewrites: Array<{ block: FencedBlock; body: string }> = [];
    for (const item of all) if (!(await runItem(t, world, item, rewrites))) break;
    closed = true;
    t.same(await world.close(), [], `${doc}: the background commands stopped cleanly (exit 0 on SIGTERM)`);
    if (rewrites.length > 0) {
      let next = markdown;
      for (const r of rewrites.sort((a, b) => b.block.line - a.block.line)) next = replaceBody(next, r.block, r.body);
      writeFileSync(path.join(root, doc), next);
      t.comment(`${doc}: rewrote ${rewrites.length} output block(s)`);
    }
  });
}

t.test('the CLI reference shows the --help of every command', async (t) => {
  const cli = itemsOf('docs/reference/cli.md', read('docs/reference/cli.md'));
  const shown = new Set(cli.flatMap((i) => (i.kind === 'sh' && i.output !== undefined ? i.commands.map((c) => c.text) : [])));
  for (const program of [agentProgram(), controlplaneProgram(), meshctlProgram()]) {
    t.ok(shown.has(`${program.name} --help`), `${program.name} --help`);
    for (const command of program.commands) {
      const line = `${program.name} ${command.name} --help`;
      t.ok(shown.has(line), `docs/reference/cli.md shows "${line}" with its output`);
    }
  }
});

t.test('error codes in the docs exist, and the error reference lists them all', async (t) => {
  const reference = read('docs/reference/errors.md');
  for (const code of Object.keys(ERROR_CODES)) t.match(reference, `\`${code}\``, `docs/reference/errors.md lists ${code}`);
  for (const doc of DOCS) {
    for (const code of read(doc).match(/MESH_E_[A-Z0-9_]+/g) ?? []) {
      if (!(code in ERROR_CODES)) t.fail(`${doc}: ${code} is not a code of lib/errors.ts`);
    }
  }
});

/** GitHub's anchor of a heading. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, '')
    .replace(/ /g, '-');
}

function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  const withoutCode = markdown.replace(/^```[\s\S]*?^```/gm, '');
  for (const [, heading] of withoutCode.matchAll(/^#{1,6}\s+(.+)$/gm)) {
    const base = slug(heading ?? '');
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    out.add(count === 0 ? base : `${base}-${count}`);
  }
  return out;
}

t.test('links between the docs resolve', async (t) => {
  const broken: string[] = [];
  let checked = 0;
  for (const doc of DOCS) {
    const markdown = read(doc).replace(/^```[\s\S]*?^```/gm, '');
    for (const [, target] of markdown.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (target === undefined || /^[a-z]+:/.test(target)) continue;
      checked++;
      const [file = '', anchor] = target.split('#');
      const resolved = file === '' ? doc : path.join(path.dirname(doc), file);
      if (!existsSync(path.join(root, resolved))) broken.push(`${doc}: link ${target}: no file ${resolved}`);
      else if (anchor !== undefined && resolved.endsWith('.md') && !anchors(read(resolved)).has(anchor))
        broken.push(`${doc}: link ${target}: no heading #${anchor} in ${resolved}`);
    }
  }
  t.ok(checked > 0, `${checked} links between the docs found`);
  t.same(broken, [], 'every link names a file that exists, and a heading it has');
});

t.test('the README shows the two commands', async (t) => {
  const readme = read('README.md');
  t.match(readme, '`npm test`');
  t.match(readme, '`npm run demo`');
});
