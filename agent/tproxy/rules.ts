/**
 * iptables rules as data. One RuleSet (built purely from the config and the
 * host's facts by build.ts) gives the iptables-restore input that installs
 * it, the check against `iptables-save` output, and the removal: nothing about
 * our rules lives anywhere else. Every chain we own starts with CHAIN_PREFIX;
 * every rule carries a comment (rendered as `-m comment --comment`), which is
 * how removal and drift checks find our jumps in the built-in chains.
 */

/** Every chain the agent creates starts with this. */
export const CHAIN_PREFIX = 'MESH_';
/** Every rule's comment starts with this (so foreign rules are never touched). */
export const COMMENT_PREFIX = 'mesh-agent:';

export type Table = 'nat' | 'filter' | 'mangle' | 'raw';
/** Which address family a rule is for: both gives the same rule in iptables and ip6tables. */
export type Family = 'ipv4' | 'ipv6' | 'both';

export interface Rule {
  readonly table: Table;
  /** A built-in chain (PREROUTING, OUTPUT...) for our jumps, or one of ours (CHAIN_PREFIX...). */
  readonly chain: string;
  readonly family: Family;
  /** Match arguments, as iptables takes them: ['-p', 'tcp', '--dport', '22']. */
  readonly match: readonly string[];
  /** Target arguments: ['-j', 'RETURN'] or ['-j', 'REDIRECT', '--to-ports', '15001']. */
  readonly target: readonly string[];
  /** Why the rule exists, without COMMENT_PREFIX (render adds it). */
  readonly comment: string;
}

export interface Chain {
  readonly table: Table;
  readonly name: string;
  readonly family: Family;
}

/** Our chains and rules, in order; rules in one chain keep their order. */
export interface RuleSet {
  readonly chains: readonly Chain[];
  readonly rules: readonly Rule[];
}

export type IptablesBackend = 'nft' | 'legacy';

/**
 * What the rules depend on besides agent config `transparentProxy`, resolved
 * once from the host (agent/tproxy/facts.ts): who Envoy and the agent run as,
 * which ports are captured inbound, which addresses must never be captured.
 */
export interface CaptureFacts {
  /** Envoy's uid and gid: its own connections are never captured (no loops). */
  readonly envoyUid: number;
  readonly envoyGid: number;
  /** The agent's uid; exempted by owner unless it is 0 (root would exempt every root process). */
  readonly agentUid: number;
  /** App ports captured inbound (workloads that opt out and excludePorts already removed), sorted. */
  readonly inboundPorts: readonly number[];
  /** Exempt destinations: the control plane's and Consul's resolved addresses (IPv4 or IPv6). */
  readonly excludeAddresses: readonly string[];
  /** uids of workloads that opt out of outbound capture (workload file runAsUser + outbound: false). */
  readonly excludeUids: readonly number[];
  /** Whether the IPv6 rules are installed too (config ipv6 resolved against the host). */
  readonly ipv6: boolean;
  /**
   * DNS capture: the host's IPv4 resolvers (resolv.conf). Only queries sent to
   * them are captured, so a local stub resolver's own upstream queries (e.g.
   * systemd-resolved on 127.0.0.53 asking the network's servers) are never
   * looped back. Absent or empty: DNS to any destination is captured.
   */
  readonly dnsServers?: readonly string[];
}

/** The source port of the DNS proxy's upstream queries (UDP): exempt from DNS capture, so no loop. */
export function dnsUpstreamSourcePort(dnsPort: number): number {
  return dnsPort + 1;
}
