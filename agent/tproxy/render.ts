/**
 * Rules as text, both ways: a Rule rendered as an `iptables-save` line, the
 * parse of `iptables-save -t <table>` output, and the iptables-restore input
 * (run with --noflush, one transaction per table and family) that installs a
 * RuleSet or removes everything of ours. Pure.
 *
 * Install is one operation whatever was there before: it deletes our jumps
 * from the built-in chains (found by comment prefix or a jump to one of our
 * chains), (re)declares our chains (`:MESH_X - [0:0]` flushes an existing
 * one), drops chains of ours the set no longer has, appends our rules, then
 * our jumps. So a first install, a second one and the replacement of stale
 * or half-applied rules after a crash are the same atomic transaction.
 * Foreign chains and rules are never named in the input, so never touched.
 */
import type { IpFamily } from './iptables-runner.js';
import { CHAIN_PREFIX, COMMENT_PREFIX, type Rule, type RuleSet, type Table } from './rules.js';

export const BUILTIN_CHAINS: Readonly<Record<Table, readonly string[]>> = {
  raw: ['PREROUTING', 'OUTPUT'],
  mangle: ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'],
  nat: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'],
  filter: ['INPUT', 'FORWARD', 'OUTPUT'],
};
export const ALL_TABLES: readonly Table[] = ['raw', 'mangle', 'nat', 'filter'];

export interface SavedChain {
  readonly name: string;
  /** ACCEPT/DROP for a built-in chain, '-' for a user chain. */
  readonly policy: string;
}

export interface SavedRule {
  readonly chain: string;
  /** The whole line as iptables-save printed it, `-A CHAIN ...`. */
  readonly line: string;
  readonly tokens: readonly string[];
}

export interface SavedTable {
  readonly table: string;
  readonly chains: readonly SavedChain[];
  readonly rules: readonly SavedRule[];
}

/** Splits an iptables-save rule line into arguments (double quotes and backslash escapes, as iptables-restore does). */
export function tokenize(line: string): string[] {
  const tokens: string[] = [];
  let current = '';
  let inQuotes = false;
  let started = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i] as string;
    if (c === '\\' && i + 1 < line.length) {
      current += line[++i];
      started = true;
    } else if (c === '"') {
      inQuotes = !inQuotes;
      started = true;
    } else if (!inQuotes && (c === ' ' || c === '\t')) {
      if (started) tokens.push(current);
      current = '';
      started = false;
    } else {
      current += c;
      started = true;
    }
  }
  if (started) tokens.push(current);
  return tokens;
}

function quote(arg: string): string {
  if (arg !== '' && /^[^\s"'\\]+$/.test(arg)) return arg;
  return `"${arg.replace(/(["\\])/g, '\\$1')}"`;
}

/** Parses `iptables-save` output (one or more tables). Counters are dropped. */
export function parseSave(text: string): Map<string, SavedTable> {
  const tables = new Map<string, SavedTable>();
  let current: { table: string; chains: SavedChain[]; rules: SavedRule[] } | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('*')) {
      current = { table: line.slice(1), chains: [], rules: [] };
      tables.set(current.table, current);
    } else if (line === 'COMMIT') {
      current = undefined;
    } else if (current !== undefined && line.startsWith(':')) {
      const [name = '', policy = '-'] = line.slice(1).split(/\s+/);
      current.chains.push({ name, policy });
    } else if (current !== undefined && line.startsWith('-A ')) {
      const tokens = tokenize(line);
      current.rules.push({ chain: tokens[1] ?? '', line, tokens });
    }
  }
  return tables;
}

export function isOurChain(name: string): boolean {
  return name.startsWith(CHAIN_PREFIX);
}

/** A rule of ours: in one of our chains, commented with our prefix, or jumping to one of our chains. */
export function isOurRule(rule: SavedRule): boolean {
  if (isOurChain(rule.chain)) return true;
  const t = rule.tokens;
  for (let i = 0; i + 1 < t.length; i++) {
    if (t[i] === '--comment' && (t[i + 1] as string).startsWith(COMMENT_PREFIX)) return true;
    if ((t[i] === '-j' || t[i] === '-g') && isOurChain(t[i + 1] as string)) return true;
  }
  return false;
}

/** The rule as iptables-save prints it: `-A CHAIN <match> -m comment --comment "mesh-agent: ..." <target>`. */
export function renderRule(rule: Rule): string {
  const comment = `${COMMENT_PREFIX} ${rule.comment}`;
  return ['-A', rule.chain, ...rule.match, '-m', 'comment', '--comment', comment, ...rule.target].map(quote).join(' ');
}

/**
 * One form for a rule line whoever printed it, for comparisons: counters and
 * the implicit protocol matches (`-m tcp` after `-p tcp`) dropped, host
 * addresses with their prefix length.
 */
export function canonicalRule(line: string): string {
  const tokens = tokenize(line);
  const out: string[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i] as string;
    const next = tokens[i + 1];
    if (t === '-m' && (next === 'tcp' || next === 'udp')) {
      i++;
      continue;
    }
    if ((t === '-d' || t === '-s') && next !== undefined && !next.includes('/')) {
      out.push(t, next.includes(':') ? `${next}/128` : `${next}/32`);
      i++;
      continue;
    }
    out.push(t);
  }
  return out.map(quote).join(' ');
}

export function inFamily(ruleFamily: Rule['family'], family: IpFamily): boolean {
  return ruleFamily === 'both' || ruleFamily === family;
}

/** The set's rules for one family and table, in order. */
export function rulesFor(set: RuleSet, family: IpFamily, table: string): Rule[] {
  return set.rules.filter((r) => r.table === table && inFamily(r.family, family));
}

export function chainsFor(set: RuleSet, family: IpFamily, table: string): string[] {
  return set.chains.filter((c) => c.table === table && inFamily(c.family, family)).map((c) => c.name);
}

/** The tables the set has rules in for a family. */
export function tablesFor(set: RuleSet, family: IpFamily): Table[] {
  return ALL_TABLES.filter((t) => set.rules.some((r) => r.table === t && inFamily(r.family, family)));
}

/** Our rules found in a saved table: rules in our chains and our jumps in the built-in chains. */
export function ourRules(saved: SavedTable | undefined): SavedRule[] {
  return saved === undefined ? [] : saved.rules.filter(isOurRule);
}

function deleteLine(rule: SavedRule): string {
  return `-D${rule.line.slice(2)}`;
}

/**
 * The iptables-restore input (--noflush) that makes `table` hold exactly the
 * set's rules for `family`, whatever of ours `current` (its save) holds.
 * undefined when the set has nothing there and nothing of ours is installed.
 */
export function renderInstall(set: RuleSet, family: IpFamily, table: Table, current: SavedTable | undefined): string | undefined {
  const rules = rulesFor(set, family, table);
  const chains = chainsFor(set, family, table);
  const installed = ourRules(current);
  const staleChains = (current?.chains ?? []).map((c) => c.name).filter((name) => isOurChain(name) && !chains.includes(name));
  if (rules.length === 0 && installed.length === 0 && staleChains.length === 0) return undefined;
  const lines = [`*${table}`];
  for (const name of [...chains, ...staleChains]) lines.push(`:${name} - [0:0]`);
  for (const rule of installed) if (!isOurChain(rule.chain)) lines.push(deleteLine(rule));
  for (const name of staleChains) lines.push(`-X ${name}`);
  const [ours, jumps] = [rules.filter((r) => isOurChain(r.chain)), rules.filter((r) => !isOurChain(r.chain))];
  for (const rule of [...ours, ...jumps]) lines.push(renderRule(rule));
  lines.push('COMMIT', '');
  return lines.join('\n');
}

/** The iptables-restore input (--noflush) that removes everything of ours from a saved table; undefined when nothing is ours. */
export function renderRemoval(current: SavedTable | undefined): string | undefined {
  return renderInstall({ chains: [], rules: [] }, 'ipv4', (current?.table ?? 'nat') as Table, current);
}

/** iptables-save output with counters zeroed and comment lines dropped, for comparing two saves. */
export function normalizeSave(text: string): string {
  return text
    .split('\n')
    .filter((line) => !line.startsWith('#'))
    .map((line) => line.replace(/\[\d+:\d+\]/g, '[0:0]'))
    .join('\n');
}

/** The whole install of a set for one family, as iptables-restore input per table (what `tproxy plan` prints). */
export function renderPlan(set: RuleSet, family: IpFamily): string {
  return tablesFor(set, family)
    .map((table) => renderInstall(set, family, table, undefined) ?? '')
    .join('');
}
