/**
 * Capabilities as /proc/<pid>/status shows them (CapInh, CapPrm, CapEff,
 * CapBnd, CapAmb: hex masks), and the check capture needs at start: the
 * agent must hold CAP_NET_ADMIN in its effective set to change iptables.
 * Pure but for readProcStatus.
 */
import { readFile } from 'node:fs/promises';
import { MeshError } from '../../lib/errors.js';

/** Bit numbers from linux/capability.h. */
export const CAP_NET_ADMIN = 12;
export const CAP_SETPCAP = 8;
export const CAP_SETUID = 7;
export const CAP_SETGID = 6;

export interface ProcCapabilities {
  readonly inheritable: bigint;
  readonly permitted: bigint;
  readonly effective: bigint;
  readonly bounding: bigint;
  readonly ambient: bigint;
}

const FIELDS = { CapInh: 'inheritable', CapPrm: 'permitted', CapEff: 'effective', CapBnd: 'bounding', CapAmb: 'ambient' } as const;

/** The capability sets of a /proc/<pid>/status text (a set missing from it counts as empty). */
export function parseCapabilities(statusText: string): ProcCapabilities {
  const out: Record<string, bigint> = { inheritable: 0n, permitted: 0n, effective: 0n, bounding: 0n, ambient: 0n };
  for (const line of statusText.split('\n')) {
    const m = /^(Cap(?:Inh|Prm|Eff|Bnd|Amb)):\s*([0-9a-fA-F]+)\s*$/.exec(line);
    if (m !== null) out[FIELDS[m[1] as keyof typeof FIELDS]] = BigInt(`0x${m[2]}`);
  }
  return out as unknown as ProcCapabilities;
}

/** The uid line's real uid (first of real, effective, saved, filesystem). */
export function parseUid(statusText: string): number | undefined {
  const m = /^Uid:\s*(\d+)/m.exec(statusText);
  return m === null ? undefined : Number(m[1]);
}

/** The real gid. */
export function parseGid(statusText: string): number | undefined {
  const m = /^Gid:\s*(\d+)/m.exec(statusText);
  return m === null ? undefined : Number(m[1]);
}

export function hasCapability(mask: bigint, bit: number): boolean {
  return (mask & (1n << BigInt(bit))) !== 0n;
}

/** MESH_E_TPROXY_PRIVILEGE unless CAP_NET_ADMIN is in the effective set, with what to grant. */
export function requireCaptureCapability(statusText: string): void {
  if (hasCapability(parseCapabilities(statusText).effective, CAP_NET_ADMIN)) return;
  throw new MeshError(
    'MESH_E_TPROXY_PRIVILEGE',
    'transparentProxy.enabled is true but the agent lacks CAP_NET_ADMIN, which changing iptables needs. ' +
      'Run mesh-agent as root, or grant the capability: AmbientCapabilities=CAP_NET_ADMIN (and CapabilityBoundingSet including it) ' +
      'in the systemd unit, or `setcap cap_net_admin+ep` on the binary; or set transparentProxy.enabled: false.',
    { details: { needs: 'CAP_NET_ADMIN', field: 'transparentProxy.enabled' } },
  );
}

/** /proc/<pid>/status ("self" for this process). */
export function readProcStatus(pid: number | 'self' = 'self'): Promise<string> {
  return readFile(`/proc/${pid}/status`, 'utf8');
}

/**
 * The prefix that runs an iptables program with exactly CAP_NET_ADMIN. A
 * non-root agent with more ambient capabilities (the packaged unit grants
 * CAP_SETUID, CAP_SETGID, CAP_KILL and CAP_CHOWN too, for Envoy) would
 * otherwise hand all of them to every iptables child: util-linux `setpriv`
 * lowers the inheritable and ambient sets to CAP_NET_ADMIN alone before the
 * exec, so the child's permitted and effective sets are that one bit.
 * Undefined (run directly) for root, whose exec regains its bounding set
 * anyway, and when the ambient set holds nothing beyond CAP_NET_ADMIN.
 */
export function iptablesCapPrefix(uid: number, caps: ProcCapabilities, setpriv = 'setpriv'): string[] | undefined {
  if (uid === 0) return undefined;
  if ((caps.ambient & ~(1n << BigInt(CAP_NET_ADMIN))) === 0n) return undefined;
  const keep = hasCapability(caps.ambient, CAP_NET_ADMIN) ? ',+net_admin' : '';
  return [setpriv, `--inh-caps=-all${keep}`, `--ambient-caps=-all${keep}`, '--'];
}
