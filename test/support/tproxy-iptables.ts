/**
 * iptables as the transparent-proxy tests look at it from the outside, inside
 * a test host's namespace, with an explicit backend (iptables-nft-save or
 * iptables-legacy-save): normalized snapshots (no comment lines, counters
 * zeroed), foreign rules a test plants first, our rules (chains MESH_*,
 * comments mesh-agent:*), and deleting one of ours by hand (drift).
 */

import type { TestHost } from './netns.js';
import type { Backend } from './tproxy-world.js';

export type Fam = 'ipv4' | 'ipv6';
const TABLES = ['filter', 'nat'] as const;

const tool = (backend: Backend, family: Fam, what: 'save' | 'restore' | '') =>
  `${family === 'ipv4' ? 'iptables' : 'ip6tables'}-${backend}${what === '' ? '' : `-${what}`}`;

/** `*-save -t TABLE` with `#` lines dropped and every [packets:bytes] counter zeroed. */
export async function savedTable(host: TestHost, backend: Backend, family: Fam, table: string): Promise<string> {
  const r = await host.exec(tool(backend, family, 'save'), ['-t', table], { timeoutMs: 15_000 });
  if (r.code !== 0) throw new Error(`${tool(backend, family, 'save')} -t ${table} in ${host.name}: ${r.stderr}`);
  return normalize(r.stdout);
}

export function normalize(saved: string): string {
  return saved
    .split('\n')
    .filter((l) => !l.startsWith('#'))
    .map((l) => l.replace(/\[\d+:\d+\]/g, '[0:0]'))
    .join('\n');
}

/** filter and nat, IPv4 and IPv6, normalized: what "byte-for-byte the same" compares. */
export async function snapshot(host: TestHost, backend: Backend): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const family of ['ipv4', 'ipv6'] as const)
    for (const table of TABLES) out[`${family} ${table}`] = await savedTable(host, backend, family, table);
  return out;
}

/** The lines of a snapshot that are ours (chains MESH_*, comments mesh-agent:). */
export function ourLines(snap: Record<string, string>): string[] {
  return Object.entries(snap).flatMap(([k, text]) =>
    text
      .split('\n')
      .filter((l) => l.includes('MESH_') || l.includes('mesh-agent:'))
      .map((l) => `${k}: ${l}`),
  );
}

async function restore(host: TestHost, backend: Backend, family: Fam, input: string): Promise<void> {
  const r = await host.exec(tool(backend, family, 'restore'), ['--noflush'], { input, timeoutMs: 15_000 });
  if (r.code !== 0) throw new Error(`${tool(backend, family, 'restore')} --noflush in ${host.name}: ${r.stderr}\n${input}`);
}

/** A user's own chains with rules in filter and nat (IPv4 and IPv6), planted before the agent runs. */
export async function plantForeignRules(host: TestHost, backend: Backend): Promise<void> {
  for (const family of ['ipv4', 'ipv6'] as const) {
    const [net, dst] = family === 'ipv4' ? ['192.0.2.0/24', '198.51.100.7'] : ['2001:db8:1::/48', '2001:db8:2::7'];
    await restore(
      host,
      backend,
      family,
      [
        '*filter',
        ':USER_FW - [0:0]',
        '-A INPUT -p tcp --dport 9999 -j USER_FW',
        `-A USER_FW -s ${net} -m comment --comment "user: block the lab" -j DROP`,
        '-A USER_FW -j RETURN',
        '-A OUTPUT -p udp --dport 9 -j ACCEPT',
        'COMMIT',
        '*nat',
        ':USER_NAT - [0:0]',
        '-A PREROUTING -p tcp --dport 9998 -j USER_NAT',
        `-A OUTPUT -p tcp -d ${dst} -j USER_NAT`,
        '-A USER_NAT -p tcp -j REDIRECT --to-ports 9997',
        'COMMIT',
        '',
      ].join('\n'),
    );
  }
}

/** Deletes one rule of ours by hand (the first `-A MESH_*` line of the table), as an operator might; returns the line. */
export async function deleteOneOfOurs(host: TestHost, backend: Backend, family: Fam, table: string): Promise<string> {
  const saved = await savedTable(host, backend, family, table);
  const line = saved.split('\n').find((l) => l.startsWith('-A MESH_') && l.includes('mesh-agent:'));
  if (line === undefined) throw new Error(`no rule of ours in ${family} ${table} of ${host.name}:\n${saved}`);
  await restore(host, backend, family, `*${table}\n-D${line.slice(2)}\nCOMMIT\n`);
  return line;
}

/** The downstream connections an Envoy listener on PORT counted (admin /stats, summed over its addresses). */
export function listenerConnections(statsText: string, port: number): number {
  let total = 0;
  const re = new RegExp(`^listener\\.([^ ]*_${port})\\.downstream_cx_total: (\\d+)$`, 'gm');
  for (const m of statsText.matchAll(re)) total += Number(m[2]);
  return total;
}
