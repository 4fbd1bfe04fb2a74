/**
 * CaptureFacts from the agent config, the workloads and the host: who Envoy
 * runs as (resolveEnvoyUser, also used to spawn Envoy), which app ports are
 * captured inbound, which owners and addresses are exempt, whether IPv6 rules
 * are installed. Pure except for the injected lookups (DNS, /etc files,
 * /proc/net/if_inet6), which default to the real ones.
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { MeshError } from '../../lib/errors.js';
import type { AgentConfig } from '../config/schema.js';
import { joinedControlPlane } from '../identity/identity-store.js';
import type { Workload } from '../workloads/workload.js';
import { type Accounts, readAccounts, resolveGroup, resolveUser } from './accounts.js';
import { readResolvConf } from './resolv-conf.js';
import type { CaptureFacts } from './rules.js';

export { parseGroup, parsePasswd, readAccounts, resolveGroup, resolveUser } from './accounts.js';

/** Envoy's default user when the agent runs as root. */
export const DEFAULT_ENVOY_USER = 'mesh-envoy';

export interface EnvoyUser {
  readonly uid: number;
  readonly gid: number;
  /** The user's name when /etc/passwd has it. */
  readonly name?: string;
}

export interface HostIdentity {
  readonly uid: number;
  readonly gid: number;
  readonly accounts?: Accounts;
}

function processIdentity(): { uid: number; gid: number } {
  return { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
}

/**
 * The user and group Envoy runs as: envoy.user / envoy.group, else
 * `mesh-envoy` when the agent is root, else the agent's own uid and gid.
 * A named user or group that does not exist is MESH_E_TPROXY_USER.
 */
export async function resolveEnvoyUser(config: Pick<AgentConfig, 'envoy'>, host: Partial<HostIdentity> = {}): Promise<EnvoyUser> {
  const self = { ...processIdentity(), ...host };
  const userSetting = config.envoy.user ?? (self.uid === 0 ? DEFAULT_ENVOY_USER : undefined);
  if (userSetting === undefined && config.envoy.group === undefined) return { uid: self.uid, gid: self.gid };
  const accounts = host.accounts ?? (await readAccounts());
  const user = userSetting === undefined ? { uid: self.uid, gid: self.gid } : resolveUser(userSetting, accounts.passwd);
  // A numeric uid with no passwd entry and no envoy.group: its own number as gid,
  // never the agent's (a root agent's gid 0 would exempt every root-group process).
  const gid = config.envoy.group !== undefined ? resolveGroup(config.envoy.group, accounts.group) : (user.gid ?? user.uid);
  return { uid: user.uid, gid, ...('name' in user && user.name !== undefined ? { name: user.name } : {}) };
}

/** App ports captured inbound: workloads not opting out, narrowed by inbound.ports, minus excludePorts; sorted. */
export function inboundPorts(config: AgentConfig['transparentProxy'], workloads: readonly Workload[]): number[] {
  const ports = new Set(workloads.filter((w) => w.transparentProxy?.inbound !== false).map((w) => w.port));
  const listed = config.inbound.ports === 'all' ? undefined : new Set(config.inbound.ports);
  return [...ports]
    .filter((p) => (listed === undefined || listed.has(p)) && !config.inbound.excludePorts.includes(p))
    .sort((a, b) => a - b);
}

/** uids of workloads that opt out of outbound capture. */
export function optOutUids(workloads: readonly Workload[]): number[] {
  const uids = workloads.flatMap((w) =>
    w.transparentProxy?.outbound === false && w.transparentProxy.runAsUser !== undefined ? [w.transparentProxy.runAsUser] : [],
  );
  return [...new Set(uids)].sort((a, b) => a - b);
}

function hostOf(hostPort: string): string {
  return hostPort.slice(0, hostPort.lastIndexOf(':'));
}

function isLoopback(address: string): boolean {
  return address.startsWith('127.') || address === '::1';
}

export type Lookup = (host: string) => Promise<string[]>;

const systemLookup: Lookup = async (host) => (await dnsLookup(host, { all: true })).map((a) => a.address);

/** The control plane's and Consul's addresses (names resolved), loopback left out (always exempt). */
export async function exemptAddresses(
  config: AgentConfig,
  lookup: Lookup = systemLookup,
  joined: (dataDir: string) => Promise<string | undefined> = joinedControlPlane,
): Promise<string[]> {
  // The control plane the agent dials: controlPlane.address, else the one stored at join (none before a join).
  const controlPlane: [string, string] | undefined =
    config.controlPlane.address !== undefined
      ? ['controlPlane.address', config.controlPlane.address]
      : await joined(config.dataDir).then((a) =>
          a === undefined ? undefined : [`the control plane address stored at join (${config.dataDir})`, a],
        );
  const named: [string, string][] = [
    ...(controlPlane === undefined ? [] : [controlPlane]),
    ['consul.address', config.consul.address],
    ['transparentProxy.dns.consulAddress', config.transparentProxy.dns.consulAddress],
  ];
  const addresses: string[] = [];
  for (const [field, value] of named) {
    const host = hostOf(value);
    if (isIP(host) !== 0) {
      addresses.push(host);
      continue;
    }
    try {
      addresses.push(...(await lookup(host)));
    } catch (err) {
      throw new MeshError(
        'MESH_E_TPROXY_RESOLVE',
        `${field}: cannot resolve "${host}" (${(err as Error).message}); capture must exempt it so the agent is never cut off; fix the name or use an IP address`,
        { details: { field, host }, cause: err },
      );
    }
  }
  return [...new Set(addresses.filter((a) => !isLoopback(a)))];
}

/** Whether the host has IPv6 at all (any address in /proc/net/if_inet6). */
export async function hostHasIpv6(file = '/proc/net/if_inet6'): Promise<boolean> {
  return (await readFile(file, 'utf8').catch(() => '')).trim() !== '';
}

export interface CaptureFactsInput {
  readonly config: AgentConfig;
  readonly workloads: readonly Workload[];
  /** Defaults to this process's uid and gid and the real /etc files. */
  readonly host?: Partial<HostIdentity>;
  readonly lookup?: Lookup;
  /** The control plane address stored at join, used when controlPlane.address is unset (default: read from dataDir). */
  readonly joinedControlPlane?: (dataDir: string) => Promise<string | undefined>;
  /** For ipv6 'auto': whether the host has IPv6 (and ip6tables works). Default: hostHasIpv6(). */
  readonly ipv6Available?: () => Promise<boolean>;
  /** DNS capture: where the host's resolvers are read from (default /etc/resolv.conf). */
  readonly resolvConfPath?: string;
}

/** The host's IPv4 resolvers (the DNS rules capture queries to these only). */
async function dnsServers(file: string | undefined): Promise<string[]> {
  return (await readResolvConf(file)).map((s) => s.address).filter((a) => isIP(a) === 4);
}

export async function resolveCaptureFacts(input: CaptureFactsInput): Promise<CaptureFacts> {
  const { config, workloads } = input;
  const tp = config.transparentProxy;
  const self = { ...processIdentity(), ...input.host };
  const envoy = await resolveEnvoyUser(config, input.host);
  if (envoy.uid === 0 || envoy.gid === 0) {
    throw new MeshError(
      'MESH_E_TPROXY_USER',
      `envoy.user/envoy.group: Envoy would run as uid ${envoy.uid} gid ${envoy.gid}; with capture on it must not be root (its owner match would exempt every root process): create mesh-envoy (useradd --system mesh-envoy) or set envoy.user and envoy.group`,
      { details: { field: 'envoy.user', uid: envoy.uid, gid: envoy.gid } },
    );
  }
  const ipv6 = tp.ipv6 === 'on' ? true : tp.ipv6 === 'off' ? false : await (input.ipv6Available ?? (() => hostHasIpv6()))();
  return {
    envoyUid: envoy.uid,
    envoyGid: envoy.gid,
    agentUid: self.uid,
    inboundPorts: inboundPorts(tp, workloads),
    excludeAddresses: await exemptAddresses(config, input.lookup, input.joinedControlPlane),
    excludeUids: optOutUids(workloads),
    ipv6,
    ...(tp.dns.capture ? { dnsServers: await dnsServers(input.resolvConfPath) } : {}),
  };
}
