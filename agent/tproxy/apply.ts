/**
 * Install, check and removal of a RuleSet through an IptablesRunner: each
 * table of each family is one iptables-restore transaction, computed from the
 * table's current `iptables-save` output (render.ts). The only edge is the
 * runner; the rest is pure.
 */
import { isMeshError } from '../../lib/errors.js';
import type { IpFamily, IptablesRunner } from './iptables-runner.js';
import {
  ALL_TABLES,
  canonicalRule,
  ourRules,
  parseSave,
  renderInstall,
  renderRemoval,
  renderRule,
  rulesFor,
  type SavedTable,
  tablesFor,
} from './render.js';
import type { RuleSet, Table } from './rules.js';

export const FAMILIES: readonly IpFamily[] = ['ipv4', 'ipv6'];

export interface RuleInspection {
  /** Rules the set expects, counted per family (a 'both' rule counts twice with IPv6). */
  readonly expected: number;
  /** Rules of ours found installed (in our chains, and our jumps in built-in chains). */
  readonly installed: number;
  /** Expected rules not installed, as `<family> <table> -A ...` lines. */
  readonly missing: readonly string[];
  /** Installed rules of ours not expected, as `<family> <table> -A ...` lines. */
  readonly unexpected: readonly string[];
}

/** The families a set has rules for. */
export function setFamilies(set: RuleSet): IpFamily[] {
  return FAMILIES.filter((f) => set.rules.some((r) => r.family === 'both' || r.family === f));
}

async function savedTable(runner: IptablesRunner, family: IpFamily, table: Table): Promise<SavedTable | undefined> {
  return parseSave(await runner.save(family, table)).get(table);
}

/**
 * For a family the set has no rules for (IPv6 off), its iptables may be
 * missing altogether: then there is nothing of ours to find there either.
 */
async function optionalSave(runner: IptablesRunner, family: IpFamily, table: Table): Promise<SavedTable | undefined> {
  try {
    return await savedTable(runner, family, table);
  } catch (err) {
    if (isMeshError(err)) return undefined;
    throw err;
  }
}

function tablesToCheck(set: RuleSet, family: IpFamily): Table[] {
  const tables = new Set<Table>([...tablesFor(set, family), 'nat']);
  return ALL_TABLES.filter((t) => tables.has(t));
}

/**
 * Makes the host's rules of ours exactly `set`: per family and table, one
 * atomic restore that replaces whatever of ours is there (nothing, the same,
 * stale or half-applied rules). Families the set does not cover are cleaned
 * of ours where their iptables works.
 */
export async function installRules(runner: IptablesRunner, set: RuleSet): Promise<void> {
  const covered = setFamilies(set);
  for (const family of FAMILIES) {
    const inSet = covered.includes(family);
    for (const table of tablesToCheck(set, family)) {
      const current = inSet ? await savedTable(runner, family, table) : await optionalSave(runner, family, table);
      const input = renderInstall(set, family, table, current);
      if (input !== undefined) await runner.restore(family, input);
    }
  }
}

/** Chains whose rules are all there but in another order (order decides what a chain does). */
function outOfOrder(want: readonly string[], have: readonly string[]): string[] {
  const chainOf = (line: string) => line.split(' ')[1] ?? '';
  const chains = [...new Set(want.map(chainOf))];
  return chains
    .filter((chain) => {
      const a = want.filter((l) => chainOf(l) === chain);
      const b = have.filter((l) => chainOf(l) === chain);
      return a.some((line, i) => b[i] !== line);
    })
    .map((chain) => `${chain}: our rules are in another order than expected`);
}

/** Compares the installed rules of ours with the set (counters and iptables' own spelling ignored). */
export async function inspectRules(runner: IptablesRunner, set: RuleSet): Promise<RuleInspection> {
  const covered = setFamilies(set);
  let expected = 0;
  let installed = 0;
  const missing: string[] = [];
  const unexpected: string[] = [];
  for (const family of FAMILIES) {
    const inSet = covered.includes(family);
    for (const table of tablesToCheck(set, family)) {
      const current = inSet ? await savedTable(runner, family, table) : await optionalSave(runner, family, table);
      const want = rulesFor(set, family, table).map((r) => canonicalRule(renderRule(r)));
      const have = ourRules(current).map((r) => canonicalRule(r.line));
      expected += want.length;
      installed += have.length;
      const left = [...have];
      for (const line of want) {
        const at = left.indexOf(line);
        if (at >= 0) left.splice(at, 1);
        else missing.push(`${family} ${table} ${line}`);
      }
      for (const line of left) unexpected.push(`${family} ${table} ${line}`);
      if (left.length === 0 && want.length === have.length)
        unexpected.push(...outOfOrder(want, have).map((c) => `${family} ${table} ${c}`));
    }
  }
  return { expected, installed, missing, unexpected };
}

/** Removes every rule and chain of ours from all tables of both families (where their iptables works); foreign ones stay. */
export async function removeRules(runner: IptablesRunner): Promise<{ removed: number }> {
  let removed = 0;
  for (const family of FAMILIES) {
    for (const table of ALL_TABLES) {
      const current = family === 'ipv4' ? await savedTable(runner, family, table) : await optionalSave(runner, family, table);
      const input = renderRemoval(current);
      if (input === undefined) continue;
      await runner.restore(family, input);
      removed += ourRules(current).length;
    }
  }
  return { removed };
}
