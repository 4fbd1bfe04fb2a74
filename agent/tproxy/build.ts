/**
 * The capture rules, built purely from agent config `transparentProxy` and the
 * host's CaptureFacts. One list gives install, check and removal (render.ts).
 *
 * Layout (all in the nat table, REDIRECT to Envoy's original-destination
 * listeners; the order inside each chain is the order below):
 *
 *   PREROUTING -p tcp -> MESH_INBOUND: excluded ports RETURN, each captured
 *     app port -> MESH_IN_REDIRECT (REDIRECT to inboundPort).
 *   OUTPUT -> MESH_DNS (dns.capture only, first): the DNS proxy's own upstream
 *     queries, Envoy, the agent and excluded owners RETURN; udp/tcp 53 to any
 *     destination -> REDIRECT to dns.port.
 *   OUTPUT -p tcp -> MESH_OUTPUT: Envoy's uid and gid RETURN first (no loops),
 *     then the agent, excluded owners, loopback, excluded destinations and
 *     ports RETURN; the rest -> MESH_REDIRECT (REDIRECT to outboundPort).
 *
 * A rule with family 'both' is the same in iptables and ip6tables; rules that
 * name an address are for that address's family. With facts.ipv6 false every
 * rule is 'ipv4' and IPv6-only rules are left out, so the set says by itself
 * which families it covers.
 */
import { isIP } from 'node:net';
import type { TransparentProxyConfig } from '../config/schema.js';
import { type CaptureFacts, type Chain, dnsUpstreamSourcePort, type Family, type Rule, type RuleSet } from './rules.js';

export const CHAINS = {
  inbound: 'MESH_INBOUND',
  inRedirect: 'MESH_IN_REDIRECT',
  output: 'MESH_OUTPUT',
  redirect: 'MESH_REDIRECT',
  dns: 'MESH_DNS',
} as const;

/** Destination ports never captured outbound, whatever the config says (no SSH lock-out). */
export const ALWAYS_EXCLUDED_PORTS: readonly number[] = [22];
/** The link-local cloud metadata address: never captured (instance credentials, boot). */
export const METADATA_ADDRESS = '169.254.169.254';

const ret = ['-j', 'RETURN'] as const;

function sortedUnique(values: Iterable<number>): number[] {
  return [...new Set(values)].sort((a, b) => a - b);
}

/** The family of an address or CIDR ('1.2.3.0/24' -> ipv4, 'fd00::/8' -> ipv6). */
export function addressFamily(addressOrCidr: string): 'ipv4' | 'ipv6' {
  const address = addressOrCidr.split('/')[0] ?? '';
  return isIP(address) === 6 ? 'ipv6' : 'ipv4';
}

/** An address as iptables-save prints it: with its prefix length (/32, /128 for a host). */
export function hostCidr(addressOrCidr: string): string {
  if (addressOrCidr.includes('/')) return addressOrCidr;
  return `${addressOrCidr}/${addressFamily(addressOrCidr) === 'ipv6' ? 128 : 32}`;
}

/** The owner exemptions shared by MESH_DNS and MESH_OUTPUT, in order. */
function ownerExemptions(config: TransparentProxyConfig, facts: CaptureFacts, chain: string, why: string): Rule[] {
  const rule = (match: string[], comment: string): Rule => ({ table: 'nat', chain, family: 'both', match, target: [...ret], comment });
  const rules = [
    rule(['-m', 'owner', '--uid-owner', String(facts.envoyUid)], `Envoy's own ${why} (uid ${facts.envoyUid}) is never captured: no loop`),
    rule(['-m', 'owner', '--gid-owner', String(facts.envoyGid)], `Envoy's own ${why} (gid ${facts.envoyGid}) is never captured: no loop`),
  ];
  if (facts.agentUid !== 0 && facts.agentUid !== facts.envoyUid) {
    rules.push(rule(['-m', 'owner', '--uid-owner', String(facts.agentUid)], `the agent's ${why} (uid ${facts.agentUid}) is not captured`));
  }
  const uids = sortedUnique([...config.outbound.excludeUIDs, ...facts.excludeUids]).filter(
    (uid) => uid !== facts.envoyUid && !(uid === facts.agentUid && uid !== 0),
  );
  for (const uid of uids) {
    const from = config.outbound.excludeUIDs.includes(uid) ? 'outbound.excludeUIDs' : 'a workload that opts out of outbound capture';
    rules.push(rule(['-m', 'owner', '--uid-owner', String(uid)], `uid ${uid} excluded (${from})`));
  }
  for (const gid of sortedUnique(config.outbound.excludeGIDs).filter((gid) => gid !== facts.envoyGid)) {
    rules.push(rule(['-m', 'owner', '--gid-owner', String(gid)], `gid ${gid} excluded (outbound.excludeGIDs)`));
  }
  return rules;
}

function inboundRules(config: TransparentProxyConfig, facts: CaptureFacts): { chains: string[]; rules: Rule[] } {
  const rule = (chain: string, match: string[], target: string[], comment: string): Rule => ({
    table: 'nat',
    chain,
    family: 'both',
    match,
    target,
    comment,
  });
  const rules: Rule[] = [];
  for (const port of sortedUnique(config.inbound.excludePorts)) {
    rules.push(
      rule(
        CHAINS.inbound,
        ['-p', 'tcp', '-m', 'tcp', '--dport', String(port)],
        [...ret],
        `inbound port ${port} excluded (inbound.excludePorts)`,
      ),
    );
  }
  for (const port of facts.inboundPorts) {
    rules.push(
      rule(
        CHAINS.inbound,
        ['-p', 'tcp', '-m', 'tcp', '--dport', String(port)],
        ['-j', CHAINS.inRedirect],
        `workload port ${port}: inbound through Envoy (mTLS required)`,
      ),
    );
  }
  rules.push(
    rule(
      CHAINS.inRedirect,
      ['-p', 'tcp'],
      ['-j', 'REDIRECT', '--to-ports', String(config.inboundPort)],
      `to Envoy's inbound capture listener :${config.inboundPort}`,
    ),
    rule('PREROUTING', ['-p', 'tcp'], ['-j', CHAINS.inbound], 'inbound TCP to the mesh inbound capture chain'),
  );
  return { chains: [CHAINS.inbound, CHAINS.inRedirect], rules };
}

function dnsRules(config: TransparentProxyConfig, facts: CaptureFacts): { chains: string[]; rules: Rule[] } {
  // IPv4 only: the DNS proxy listens on 127.0.0.1, and a REDIRECT in ip6tables
  // would send queries to ::1 where nothing answers (host resolution must never break).
  const port = config.dns.port;
  const upstream = dnsUpstreamSourcePort(port);
  const rules: Rule[] = [
    {
      table: 'nat',
      chain: CHAINS.dns,
      family: 'ipv4',
      match: ['-p', 'udp', '-m', 'udp', '--sport', String(upstream)],
      target: [...ret],
      comment: `the DNS proxy's own upstream queries (source port ${upstream}) are not captured: no loop`,
    },
    ...ownerExemptions(config, facts, CHAINS.dns, 'DNS').map((r): Rule => ({ ...r, family: 'ipv4' })),
  ];
  for (const proto of ['udp', 'tcp']) {
    rules.push({
      table: 'nat',
      chain: CHAINS.dns,
      family: 'ipv4',
      match: ['-p', proto, '-m', proto, '--dport', '53'],
      target: ['-j', 'REDIRECT', '--to-ports', String(port)],
      comment: `DNS over ${proto} to any resolver goes to the agent's DNS proxy :${port}`,
    });
  }
  rules.push({
    table: 'nat',
    chain: 'OUTPUT',
    family: 'ipv4',
    match: [],
    target: ['-j', CHAINS.dns],
    comment: 'DNS capture (dns.capture)',
  });
  return { chains: [CHAINS.dns], rules };
}

function outboundRules(config: TransparentProxyConfig, facts: CaptureFacts): { chains: string[]; rules: Rule[] } {
  const chain = CHAINS.output;
  const rule = (family: Family, match: string[], comment: string, target: string[] = [...ret]): Rule => ({
    table: 'nat',
    chain,
    family,
    match,
    target,
    comment,
  });
  const rules: Rule[] = [
    ...ownerExemptions(config, facts, chain, 'traffic'),
    rule('both', ['-o', 'lo'], 'traffic out of loopback is not captured'),
    rule('ipv4', ['-d', '127.0.0.0/8'], 'loopback destinations are not captured'),
    rule('ipv6', ['-d', '::1/128'], 'loopback destinations are not captured'),
  ];
  for (const cidr of config.outbound.excludeCIDRs) {
    rules.push(rule(addressFamily(cidr), ['-d', hostCidr(cidr)], `${cidr} excluded (outbound.excludeCIDRs)`));
  }
  for (const address of [...new Set(facts.excludeAddresses)]) {
    rules.push(rule(addressFamily(address), ['-d', hostCidr(address)], `${address}: the control plane or Consul, never captured`));
  }
  rules.push(rule('ipv4', ['-d', hostCidr(METADATA_ADDRESS)], 'link-local cloud metadata is never captured'));
  for (const port of sortedUnique([...ALWAYS_EXCLUDED_PORTS, ...config.outbound.excludePorts])) {
    const why = ALWAYS_EXCLUDED_PORTS.includes(port)
      ? `port ${port}: SSH is never captured (no lock-out)`
      : `port ${port} excluded (outbound.excludePorts)`;
    rules.push(rule('both', ['-p', 'tcp', '-m', 'tcp', '--dport', String(port)], why));
  }
  rules.push(
    rule('both', [], 'all other outbound TCP goes to Envoy', ['-j', CHAINS.redirect]),
    {
      table: 'nat',
      chain: CHAINS.redirect,
      family: 'both',
      match: ['-p', 'tcp'],
      target: ['-j', 'REDIRECT', '--to-ports', String(config.outboundPort)],
      comment: `to Envoy's outbound capture listener :${config.outboundPort}`,
    },
    { ...rule('both', ['-p', 'tcp'], 'outbound TCP to the mesh outbound capture chain', ['-j', chain]), chain: 'OUTPUT' },
  );
  return { chains: [CHAINS.output, CHAINS.redirect], rules };
}

/** Narrows the rules to what the host has: without IPv6, 'both' becomes 'ipv4' and IPv6-only rules go. */
function forHost(rules: Rule[], ipv6: boolean): Rule[] {
  if (ipv6) return rules;
  return rules.filter((r) => r.family !== 'ipv6').map((r) => (r.family === 'both' ? { ...r, family: 'ipv4' } : r));
}

export function buildRuleSet(config: TransparentProxyConfig, facts: CaptureFacts): RuleSet {
  const parts: { chains: string[]; rules: Rule[] }[] = [];
  if (config.inbound.enabled) parts.push(inboundRules(config, facts));
  if (config.dns.capture) parts.push(dnsRules(config, facts));
  if (config.outbound.enabled) parts.push(outboundRules(config, facts));
  const rules = forHost(
    parts.flatMap((p) => p.rules),
    facts.ipv6,
  );
  const chains: Chain[] = parts.flatMap((p) =>
    p.chains.map((name): Chain => {
      const families = new Set(rules.filter((r) => r.chain === name).map((r) => r.family));
      const family: Family = families.size === 1 ? ([...families][0] as Family) : facts.ipv6 ? 'both' : 'ipv4';
      return { table: 'nat', name, family };
    }),
  );
  return { chains, rules };
}
