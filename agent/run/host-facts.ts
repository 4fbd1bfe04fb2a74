/**
 * Host facts, read once at start: the host name (node:os), the OS and the address
 * other hosts reach this one at (systeminformation). systeminformation shells out
 * (hostname -f, cat of the release files, dmesg, ip, which, nmcli, ...) and runs most
 * of it with execSync, which blocks its thread; so it runs in a child process of its
 * own, and the timeout, on this thread, holds even when a command hangs. A child
 * process, not a worker thread: a worker's isolate leaves its memory behind in this
 * process (malloc arenas, node's pages it touched), about 2 MB of the agent's RSS
 * measured in vs-consul; a process gives all of it back when it exits. Nothing reads
 * host facts after start (status and reload use the ones collected here).
 */
import { fork } from 'node:child_process';
import { isIP } from 'node:net';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import type { Clock } from '../../lib/clock.js';
import { MeshError } from '../../lib/errors.js';

export interface HostFacts {
  hostname: string;
  os: string;
  /** First non-internal IPv4 address that is not down; 127.0.0.1 when there is none. */
  address: string;
  /** First non-internal global IPv6 address of an interface that is not down; absent when there is none. */
  address6?: string;
}

/** Reads the facts; stops (and frees what it holds) when the signal aborts. */
export type HostFactsSource = (signal: AbortSignal) => Promise<HostFacts>;

export interface SiOs {
  distro: string;
  release: string;
  platform: string;
}
export interface SiInterface {
  /** The interface's name (its addresses in node:os). */
  iface?: string;
  internal: boolean;
  ip4: string;
  /** systeminformation's one IPv6 address of the interface ("" when none). */
  ip6?: string;
  operstate: string;
}

/** True for an IPv6 address other hosts can reach: not link-local, loopback, unspecified, IPv4-mapped or scoped. */
export function globalIpv6(address: string): boolean {
  if (isIP(address) !== 6 || address.includes('%')) return false;
  const lower = address.toLowerCase();
  if (/^fe[89ab][0-9a-f]:/.test(lower) || lower.startsWith('::ffff:')) return false;
  const canonical = new URL(`http://[${lower}]/`).hostname.slice(1, -1);
  return canonical !== '::' && canonical !== '::1';
}

/**
 * Pure: the facts from systeminformation's osInfo() and networkInterfaces().
 * systeminformation keeps one IPv6 address per interface, on Linux the first
 * the kernel lists (often the link-local one): `addresses6` (node:os
 * networkInterfaces(), IPv6 addresses by interface name) are its other ones.
 */
export function factsFrom(
  osInfo: SiOs,
  nets: SiInterface | readonly SiInterface[],
  hostname: string,
  addresses6: Readonly<Record<string, readonly string[] | undefined>> = {},
): HostFacts {
  const list = Array.isArray(nets) ? nets : [nets as SiInterface];
  const up = list.filter((n) => !n.internal && n.operstate !== 'down');
  const external = up.find((n) => n.ip4 !== '');
  const address6 = up.flatMap((n) => [n.ip6 ?? '', ...(addresses6[n.iface ?? ''] ?? [])]).find(globalIpv6);
  return {
    hostname,
    os: `${osInfo.distro} ${osInfo.release}`.trim() || osInfo.platform,
    address: external?.ip4 ?? '127.0.0.1',
    ...(address6 === undefined ? {} : { address6 }),
  };
}

/** The child's module next to this one: .js when built, .ts when run from source (tests). */
function workerPath(): string {
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
  return fileURLToPath(new URL(`./host-facts-worker${ext}`, import.meta.url));
}

/** What the child sends: the facts, or why it could not read them. */
export type HostFactsMessage = { facts?: { os: string; address: string; address6?: string }; error?: string };

/**
 * systeminformation in a child process (node with this process's flags); an
 * abort kills it. Its output is not read: it answers over the IPC channel.
 */
export const hostFacts: HostFactsSource = (signal) =>
  new Promise<HostFacts>((resolve, reject) => {
    const child = fork(workerPath(), [], { stdio: ['ignore', 'ignore', 'ignore', 'ipc'], serialization: 'json' });
    const kill = () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    };
    // The agent exiting while the facts are read (a stop during start) takes the child with it.
    process.once('exit', kill);
    let settled = false;
    const settle = (then: () => void) => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      process.off('exit', kill);
      kill();
      then();
    };
    const onAbort = () => settle(() => reject(signal.reason));
    signal.addEventListener('abort', onAbort, { once: true });
    child.once('message', (m: HostFactsMessage) =>
      settle(() => {
        if (m.facts !== undefined) resolve({ hostname: os.hostname(), ...m.facts });
        else reject(new Error(m.error ?? 'no answer'));
      }),
    );
    child.once('error', (err) => settle(() => reject(err)));
    child.once('exit', (code, sig) => settle(() => reject(new Error(`the host facts process exited with ${sig ?? `code ${code}`}`))));
  });

const HINT = 'set advertiseAddress (the address other hosts reach this one at) and nodeName in the agent configuration';

/**
 * The facts, once, within timeoutMs. A failure or a timeout is MESH_E_HOST_FACTS,
 * naming what failed and what to configure instead.
 */
export async function collectHostFacts(options: { source: HostFactsSource; timeoutMs: number; clock: Clock }): Promise<HostFacts> {
  const abort = new AbortController();
  let timer: { cancel(): void } | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = options.clock.setTimer(options.timeoutMs, () => {
      const err = new MeshError(
        'MESH_E_HOST_FACTS',
        `reading the host facts (OS and network addresses, with systeminformation) did not finish within ${options.timeoutMs} ms; ` +
          `${HINT}, or raise hostFactsTimeout`,
        { details: { timeoutMs: options.timeoutMs } },
      );
      abort.abort(err);
      reject(err);
    });
  });
  try {
    return await Promise.race([options.source(abort.signal), timeout]);
  } catch (err) {
    if (err instanceof MeshError) throw err;
    throw new MeshError(
      'MESH_E_HOST_FACTS',
      `reading the host facts (OS and network addresses, with systeminformation) failed: ${(err as Error).message}; ${HINT}`,
      {
        cause: err,
      },
    );
  } finally {
    timer?.cancel();
  }
}

/** The host name, as every command defaults nodeName to it: os.hostname() (what systeminformation reports too). */
export const systemHostname = async (): Promise<string> => os.hostname();

/** When the facts cannot be read but advertiseAddress is configured: what node:os knows, without a shell. */
export function fallbackHostFacts(): HostFacts {
  return { hostname: os.hostname(), os: `${os.type()} ${os.release()}`, address: '127.0.0.1' };
}
