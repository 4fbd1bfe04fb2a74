/**
 * The transparent-proxy part of the model (ProxyModel.capture). Pure.
 *
 * - The caller: captured outbound calls present one local workload's SVID.
 *   It is agent config `transparentProxy.outbound.caller`, else the first
 *   workload by name that does not opt out (`transparentProxy.outbound:
 *   false`). It is chosen among all workload files, not only those with an
 *   SVID, so the identity never flips while SVIDs arrive; a caller without its
 *   SVID yet means no mesh chains (unknown-destination handling only).
 * - The chains: every mesh service of the catalog (instances with a SPIFFE
 *   ID whose identity secure naming accepts), its instance addresses grouped
 *   by app port. An instance with an IPv6 address (address6, Consul's
 *   lan_ipv6) contributes it too, so an app calling the IPv6 address is
 *   captured alike; Envoy still sends mTLS to the mesh port at the main
 *   address. The catalog is not trusted to be well formed: an address
 *   that is not an IP is left out, and an address:port two services claim
 *   goes to the first service by name; both are reported. Envoy would reject
 *   the whole listener for either, so neither may reach it.
 * - The inbound workloads: those in the model that do not opt out
 *   (`transparentProxy.inbound: false`), one per app port.
 */
import { isIP } from 'node:net';
import type { TransparentProxyConfig } from '../config/schema.js';
import type { CatalogInstance } from '../discovery/catalog-view.js';
import type { Workload } from '../workloads/workload.js';
import type { ModelCaptureChain, ModelWorkload } from './proxy-model.js';

/** Agent config transparentProxy, as the model needs it (agent/run/run-command.ts resolves ipv6). */
export interface CaptureInput {
  readonly outboundPort: number;
  readonly inboundPort: number;
  readonly ipv6: boolean;
  readonly policy: 'allow' | 'registryOnly';
  /** transparentProxy.outbound.caller; absent: the first workload by name that does not opt out. */
  readonly caller?: string;
  readonly outboundEnabled: boolean;
  readonly inboundEnabled: boolean;
}

/**
 * The capture input of agent config transparentProxy (undefined when capture
 * is off); ipv6: the config's auto|on|off resolved against the host (the same
 * answer the rules use: an IPv6 listener on a host without IPv6 cannot bind).
 */
export function captureInputOf(config: TransparentProxyConfig, ipv6: boolean): CaptureInput | undefined {
  if (!config.enabled) return undefined;
  return {
    outboundPort: config.outboundPort,
    inboundPort: config.inboundPort,
    ipv6,
    policy: config.outbound.policy,
    ...(config.outbound.caller === undefined ? {} : { caller: config.outbound.caller }),
    outboundEnabled: config.outbound.enabled,
    inboundEnabled: config.inbound.enabled,
  };
}

/** The workload whose SVID captured calls present: its name, or "" and why there is none. */
export function captureCaller(workloads: readonly Workload[], input: CaptureInput): { readonly name: string; readonly problem?: string } {
  if (!input.outboundEnabled) return { name: '' };
  if (input.caller !== undefined) {
    const named = workloads.find((w) => w.name === input.caller);
    if (named === undefined)
      return {
        name: '',
        problem: `transparentProxy.outbound.caller ${JSON.stringify(input.caller)} is no workload of this node; captured calls reach no mesh service`,
      };
    return { name: named.name };
  }
  const first = [...workloads].sort((a, b) => (a.name < b.name ? -1 : 1)).find((w) => w.transparentProxy?.outbound !== false);
  return first === undefined ? { name: '' } : { name: first.name };
}

/**
 * The canonical text of an IP address Envoy can match with a /32 or /128
 * prefix (IPv6 compressed, IPv4-mapped IPv6 as IPv4: two spellings of one
 * address would be one match to Envoy, which rejects duplicates); undefined for host names, scoped (fe80::1%eth0), unspecified
 * (0.0.0.0, ::) or malformed addresses.
 */
export function canonicalAddress(address: string): string | undefined {
  if (address.includes('%')) return undefined;
  const family = isIP(address);
  if (family === 4) return address === '0.0.0.0' ? undefined : address;
  if (family !== 6) return undefined;
  // The URL parser prints IPv6 in its compressed lower-case form ("0:0::1" and "::1" are one address).
  const canonical = new URL(`http://[${address}]/`).hostname.slice(1, -1);
  // An IPv4-mapped address is the IPv4 address to Envoy's matcher: both spellings must collide here, not in Envoy.
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(canonical);
  if (mapped !== null) {
    const [hi, lo] = [Number.parseInt(mapped[1] ?? '0', 16), Number.parseInt(mapped[2] ?? '0', 16)];
    return canonicalAddress(`${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`);
  }
  return canonical === '::' ? undefined : canonical;
}

export interface CaptureService {
  readonly service: string;
  /** The service's mesh instances that secure naming lets serve it. */
  readonly instances: readonly Pick<CatalogInstance, 'id' | 'address' | 'address6' | 'appPort'>[];
}

/** True for the outbound capture listener's own addresses (its loop guard chain owns them). */
function reserved(address: string, port: number, outboundPort: number): boolean {
  return port === outboundPort && (address === '::1' || address.startsWith('127.'));
}

/**
 * Capture filter chains for the services (any order): per service, its
 * instance addresses grouped by app port; sorted by service then port.
 * problems: one sentence per left-out address or claim.
 */
export function captureChains(
  services: readonly CaptureService[],
  outboundPort: number,
): { chains: ModelCaptureChain[]; problems: string[] } {
  const problems: string[] = [];
  const owner = new Map<string, string>();
  const chains: ModelCaptureChain[] = [];
  for (const { service, instances } of [...services].sort((a, b) => (a.service < b.service ? -1 : 1))) {
    const byPort = new Map<number, Set<string>>();
    const invalid: string[] = [];
    const lost = new Map<string, string[]>();
    for (const i of instances.flatMap((i) => (i.address6 === undefined ? [i] : [i, { ...i, address: i.address6 }]))) {
      const address = canonicalAddress(i.address);
      if (
        address === undefined ||
        !Number.isInteger(i.appPort) ||
        i.appPort < 1 ||
        i.appPort > 65535 ||
        reserved(address, i.appPort, outboundPort)
      ) {
        invalid.push(`${i.id} (${JSON.stringify(i.address)}, port ${i.appPort})`);
        continue;
      }
      const key = address.includes(':') ? `[${address}]:${i.appPort}` : `${address}:${i.appPort}`;
      const holder = owner.get(key);
      if (holder !== undefined && holder !== service) {
        lost.set(holder, [...(lost.get(holder) ?? []), key]);
        continue;
      }
      owner.set(key, service);
      byPort.set(i.appPort, (byPort.get(i.appPort) ?? new Set()).add(address));
    }
    if (invalid.length > 0)
      problems.push(
        `capture: service ${service}: ${invalid.length} instance(s) left out, their address is no IP address Envoy can match, or the outbound capture listener's own: ${invalid.join(', ')}`,
      );
    for (const [holder, keys] of lost)
      problems.push(`capture: service ${service} claims ${keys.join(', ')}, which service ${holder} already has; ${holder} keeps it`);
    for (const port of [...byPort.keys()].sort((a, b) => a - b))
      chains.push({ service, port, addresses: [...(byPort.get(port) ?? [])].sort() });
  }
  return { chains, problems };
}

/**
 * The workloads captured inbound (names, sorted): in the model, not opting
 * out, with an app port that is neither a capture port nor another captured
 * workload's (Envoy rejects two chains with the same match).
 */
export function inboundCaptured(
  modelWorkloads: readonly ModelWorkload[],
  workloads: readonly Workload[],
  input: CaptureInput,
): { names: string[]; problems: Array<{ workload: string; reason: string }> } {
  if (!input.inboundEnabled) return { names: [], problems: [] };
  const names: string[] = [];
  const problems: Array<{ workload: string; reason: string }> = [];
  const ports = new Map<number, string>([
    [input.inboundPort, 'the inbound capture listener'],
    [input.outboundPort, 'the outbound capture listener'],
  ]);
  for (const w of [...modelWorkloads].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    if (workloads.find((f) => f.name === w.name)?.transparentProxy?.inbound === false) continue;
    const holder = ports.get(w.appPort);
    if (holder !== undefined) {
      problems.push({ workload: w.name, reason: `capture: app port ${w.appPort} is already used by ${holder}; not captured inbound` });
      continue;
    }
    ports.set(w.appPort, `workload ${w.name}`);
    names.push(w.name);
  }
  return { names, problems };
}
