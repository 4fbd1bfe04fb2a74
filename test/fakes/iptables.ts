/**
 * FakeIptablesRunner: the shared fake of IptablesRunner (agent/tproxy/iptables-runner.ts).
 * It holds each family's tables as data and prints them the way iptables-save
 * does (built-in chains first, then user chains, then the rules; counters
 * [0:0]); restore applies the iptables-restore operations agent/tproxy/render.ts
 * emits (`*table`, `:CHAIN POLICY [..]` which creates or, for a user chain,
 * flushes it, `-A`, `-I`, `-D` by exact spec, `-F`, `-X`, `COMMIT`) as one
 * transaction: any error leaves the tables as they were. Rule text is kept as
 * written, so it does not add `-m tcp` the way real iptables-save does.
 *
 * API:
 *   new FakeIptablesRunner({ backend?, ipv6? })  ipv6: false makes every
 *     ipv6 save/restore fail like a host without ip6tables.
 *   load(family, saveText)      seeds tables from iptables-save text (foreign rules).
 *   save(family, table) / restore(family, input)   the IptablesRunner seam.
 *   restores                    every input restore was given, in order.
 *   failRestores(n, message)    the next n restores fail with MESH_E_TPROXY_IPTABLES.
 *   deleteRule(family, table, line)   a rule deleted by hand (`-A ...` line as saved).
 */

import type { IpFamily, IptablesRunner } from '../../agent/tproxy/iptables-runner.js';
import { BUILTIN_CHAINS, tokenize } from '../../agent/tproxy/render.js';
import type { IptablesBackend, Table } from '../../agent/tproxy/rules.js';
import { MeshError } from '../../lib/errors.js';

interface FakeChain {
  policy: string;
  rules: string[];
}
type Tables = Map<string, Map<string, FakeChain>>;

function fail(message: string): never {
  throw new MeshError('MESH_E_TPROXY_IPTABLES', message);
}

function cloneTables(tables: Tables): Tables {
  return new Map(
    [...tables].map(([t, chains]) => [t, new Map([...chains].map(([n, c]) => [n, { policy: c.policy, rules: [...c.rules] }]))]),
  );
}

function newTable(table: string): Map<string, FakeChain> {
  const builtins = BUILTIN_CHAINS[table as Table];
  if (builtins === undefined) fail(`iptables-restore: table '${table}' does not exist`);
  return new Map(builtins.map((name) => [name, { policy: 'ACCEPT', rules: [] }]));
}

/** The rule's spec as a canonical string (tokens re-joined), so `-D` matches however the line was quoted. */
function spec(tokens: readonly string[]): string {
  return JSON.stringify(tokens);
}

export class FakeIptablesRunner implements IptablesRunner {
  readonly backend: IptablesBackend;
  readonly restores: { family: IpFamily; input: string }[] = [];
  private readonly families = new Map<IpFamily, Tables>([
    ['ipv4', new Map()],
    ['ipv6', new Map()],
  ]);
  private readonly ipv6: boolean;
  private failures: { count: number; message: string } = { count: 0, message: '' };

  constructor(options: { backend?: IptablesBackend; ipv6?: boolean } = {}) {
    this.backend = options.backend ?? 'nft';
    this.ipv6 = options.ipv6 ?? true;
  }

  private tables(family: IpFamily): Tables {
    if (family === 'ipv6' && !this.ipv6) fail('ip6tables: the fake host has no IPv6');
    return this.families.get(family) as Tables;
  }

  async save(family: IpFamily, table: string): Promise<string> {
    const chains = this.tables(family).get(table) ?? newTable(table);
    const builtins = BUILTIN_CHAINS[table as Table] ?? [];
    const names = [...builtins, ...[...chains.keys()].filter((n) => !builtins.includes(n))];
    const lines = [`*${table}`];
    for (const name of names) lines.push(`:${name} ${chains.get(name)?.policy ?? 'ACCEPT'} [0:0]`);
    for (const name of names) for (const rule of chains.get(name)?.rules ?? []) lines.push(`-A ${name} ${rule}`);
    lines.push('COMMIT', '');
    return lines.join('\n');
  }

  async restore(family: IpFamily, input: string): Promise<void> {
    this.restores.push({ family, input });
    if (this.failures.count > 0) {
      this.failures.count--;
      fail(this.failures.message);
    }
    const next = cloneTables(this.tables(family));
    applyRestore(next, input);
    this.families.set(family, next);
  }

  load(family: IpFamily, saveText: string): void {
    const next = cloneTables(this.tables(family));
    applyRestore(next, saveText);
    this.families.set(family, next);
  }

  failRestores(count: number, message = 'iptables-restore: line 2 failed'): void {
    this.failures = { count, message };
  }

  deleteRule(family: IpFamily, table: string, line: string): void {
    const next = cloneTables(this.tables(family));
    applyRestore(next, `*${table}\n-D${line.slice(2)}\nCOMMIT\n`);
    this.families.set(family, next);
  }
}

function jumpsTo(rule: string, chain: string): boolean {
  const t = tokenize(rule);
  return t.some((tok, i) => (tok === '-j' || tok === '-g') && t[i + 1] === chain);
}

/** Applies iptables-restore --noflush input to `tables` in place (the caller passes a copy). */
function applyRestore(tables: Tables, input: string): void {
  let chains: Map<string, FakeChain> | undefined;
  let tableName = '';
  input.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    const where = `line ${index + 1}`;
    if (line === '' || line.startsWith('#')) return;
    if (line.startsWith('*')) {
      tableName = line.slice(1);
      chains = tables.get(tableName) ?? newTable(tableName);
      tables.set(tableName, chains);
      return;
    }
    if (line === 'COMMIT') {
      chains = undefined;
      return;
    }
    if (chains === undefined) fail(`iptables-restore: ${where}: no table`);
    const table = chains;
    const builtins = BUILTIN_CHAINS[tableName as Table] ?? [];
    if (line.startsWith(':')) {
      const [name = '', policy = '-'] = line.slice(1).split(/\s+/);
      const existing = table.get(name);
      if (builtins.includes(name)) {
        if (existing !== undefined && policy !== '-') existing.policy = policy;
      } else if (existing !== undefined) existing.rules = [];
      else table.set(name, { policy: '-', rules: [] });
      return;
    }
    const tokens = tokenize(line);
    const [op, name = ''] = tokens;
    const chain = table.get(name);
    if (chain === undefined) fail(`iptables-restore: ${where}: chain ${name} does not exist`);
    const rest = tokens.slice(2);
    const ruleText = line.replace(/^\S+\s+\S+\s*/, '');
    const target = rest[rest.indexOf('-j') + 1];
    if ((op === '-A' || op === '-I') && rest.includes('-j') && target !== undefined && /^[A-Z_]+$/.test(target)) {
      const known = ['ACCEPT', 'DROP', 'RETURN', 'REDIRECT', 'DNAT', 'SNAT', 'MASQUERADE', 'REJECT', 'LOG', 'MARK', 'TPROXY', 'CONNMARK'];
      if (!known.includes(target) && !table.has(target)) fail(`iptables-restore: ${where}: chain ${target} does not exist`);
    }
    switch (op) {
      case '-A':
        chain.rules.push(ruleText);
        return;
      case '-I':
        chain.rules.unshift(ruleText);
        return;
      case '-D': {
        const at = chain.rules.findIndex((r) => spec(tokenize(r)) === spec(rest));
        if (at < 0) fail(`iptables-restore: ${where}: Bad rule (does a matching rule exist in that chain?)`);
        chain.rules.splice(at, 1);
        return;
      }
      case '-F':
        chain.rules = [];
        return;
      case '-X': {
        const referenced = [...table.values()].some((c) => c.rules.some((r) => jumpsTo(r, name)));
        if (builtins.includes(name) || chain.rules.length > 0 || referenced)
          fail(`iptables-restore: ${where}: cannot delete chain ${name}`);
        table.delete(name);
        return;
      }
      default:
        fail(`iptables-restore: ${where}: unknown command ${op}`);
    }
  });
}
