/**
 * The real IptablesRunner: `iptables-{nft,legacy}-save -t <table>` and
 * `iptables-{nft,legacy}-restore --noflush` (ip6tables-* for IPv6), input on
 * stdin, each call with a timeout; a failure is MESH_E_TPROXY_IPTABLES with
 * the program's stderr and the input line it names. detectBackend picks the
 * backend the host already uses.
 */

import { MeshError } from '../../lib/errors.js';
import { run } from '../../lib/exec.js';
import type { IpFamily, IptablesRunner } from './iptables-runner.js';
import { iptablesCapPrefix, parseCapabilities, parseUid, readProcStatus } from './privileges.js';
import { parseSave } from './render.js';
import type { IptablesBackend } from './rules.js';

export interface ExecRunnerOptions {
  /** Per save or restore (default 15 s). */
  readonly timeoutMs?: number;
  /** Runs every program through this prefix, e.g. ['ip', 'netns', 'exec', 'ns1'] (tests). */
  readonly commandPrefix?: readonly string[];
}

export type BackendChoice = 'auto' | IptablesBackend;

/** The program names of one backend and family: iptables-nft-save, ip6tables-legacy-restore... */
export function programName(backend: IptablesBackend, family: IpFamily, tool: 'save' | 'restore'): string {
  return `${family === 'ipv6' ? 'ip6tables' : 'iptables'}-${backend}-${tool}`;
}

/** How a missing program shows through a prefix: `ip netns exec` says "exec of ... failed", env exits 127. */
const NOT_FOUND = /exec of .* failed: No such file or directory/;

async function exec(
  program: string,
  args: string[],
  options: ExecRunnerOptions,
  input?: string,
): Promise<{ code: number | null; stdout: string; stderr: string; missing: boolean }> {
  const prefix = options.commandPrefix ?? [];
  const [command, ...rest] = [...prefix, program, ...args] as [string, ...string[]];
  try {
    const result = await run(command, rest, { timeoutMs: options.timeoutMs ?? 15_000, ...(input === undefined ? {} : { input }) });
    return { ...result, missing: result.code === 127 || (result.code !== 0 && NOT_FOUND.test(result.stderr)) };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { code: null, stdout: '', stderr: String(err), missing: true };
    throw err;
  }
}

function missingError(programs: readonly string[]): MeshError {
  return new MeshError(
    'MESH_E_TPROXY_NO_IPTABLES',
    `${programs.join(', ')} not found: install the iptables package (Debian/Ubuntu: apt-get install iptables; RHEL: dnf install iptables-nft), or set transparentProxy.backend to the backend that is installed`,
    { details: { missing: [...programs] } },
  );
}

/** The failing line of iptables-restore input, when stderr names one ("Error occurred at line: 3", "line 3 failed"). */
function failingLine(stderr: string, input: string): string | undefined {
  const m = /line:? (\d+)/.exec(stderr);
  if (m === null) return undefined;
  const line = input.split('\n')[Number(m[1]) - 1];
  // nft reports some errors at the COMMIT that applies the table: no line to name then.
  return line === 'COMMIT' ? undefined : line;
}

export function createIptablesRunner(backend: IptablesBackend, options: ExecRunnerOptions = {}): IptablesRunner {
  return {
    backend,
    async save(family, table) {
      const program = programName(backend, family, 'save');
      const result = await exec(program, ['-t', table], options);
      if (result.missing) throw missingError([program]);
      if (result.code === 0) return result.stdout;
      // A table the kernel does not have holds nothing of ours.
      if (/Table does not exist/.test(result.stderr)) return '';
      throw new MeshError('MESH_E_TPROXY_IPTABLES', `${program} -t ${table} failed (exit ${result.code}): ${result.stderr.trim()}`, {
        details: { program, family, table, stderr: result.stderr, exitCode: result.code },
      });
    },
    async restore(family, input) {
      const program = programName(backend, family, 'restore');
      const result = await exec(program, ['--noflush', '-w', '5'], options, input);
      if (result.missing) throw missingError([program]);
      if (result.code === 0) return;
      const line = failingLine(result.stderr, input);
      throw new MeshError(
        'MESH_E_TPROXY_IPTABLES',
        `${program} --noflush failed (exit ${result.code}), the table is unchanged: ${result.stderr.trim()}${line === undefined ? '' : `\n  at: ${line}`}`,
        { details: { program, family, stderr: result.stderr, exitCode: result.code, ...(line === undefined ? {} : { line }) } },
      );
    },
  };
}

/** How many rules a backend holds (all tables, IPv4 and IPv6 where it works); undefined when its programs are missing. */
async function ruleCount(backend: IptablesBackend, options: ExecRunnerOptions): Promise<number | undefined> {
  let count = 0;
  let found = false;
  for (const family of ['ipv4', 'ipv6'] as const) {
    const result = await exec(programName(backend, family, 'save'), [], options);
    if (result.missing) continue;
    found = true;
    if (result.code !== 0) continue;
    for (const table of parseSave(result.stdout).values()) count += table.rules.length;
  }
  return found ? count : undefined;
}

/**
 * The backend to use: the one asked for (its programs checked), or for 'auto'
 * the one the host already uses: more rules in its save output wins (as
 * Istio does); a tie goes to what `iptables --version` says, then to nft.
 */
export async function detectBackend(choice: BackendChoice, options: ExecRunnerOptions = {}): Promise<IptablesBackend> {
  const candidates: IptablesBackend[] = choice === 'auto' ? ['nft', 'legacy'] : [choice];
  const counts = new Map<IptablesBackend, number>();
  for (const backend of candidates) {
    const count = await ruleCount(backend, options);
    if (count !== undefined) counts.set(backend, count);
  }
  if (counts.size === 0) {
    throw missingError(candidates.flatMap((b) => [programName(b, 'ipv4', 'save'), programName(b, 'ipv4', 'restore')]));
  }
  if (counts.size === 1) return [...counts.keys()][0] as IptablesBackend;
  const nft = counts.get('nft') ?? 0;
  const legacy = counts.get('legacy') ?? 0;
  if (nft !== legacy) return nft > legacy ? 'nft' : 'legacy';
  const version = await exec('iptables', ['--version'], options).catch(() => undefined);
  return version?.stdout.includes('(legacy)') === true ? 'legacy' : 'nft';
}

/**
 * Runner options for this process: iptables programs get exactly CAP_NET_ADMIN
 * (iptablesCapPrefix) when the agent holds more ambient capabilities.
 */
export async function hostRunnerOptions(procStatus: () => Promise<string> = () => readProcStatus('self')): Promise<ExecRunnerOptions> {
  const status = await procStatus();
  const prefix = iptablesCapPrefix(parseUid(status) ?? 0, parseCapabilities(status));
  return prefix === undefined ? {} : { commandPrefix: prefix };
}
