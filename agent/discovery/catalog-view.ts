/**
 * CatalogView: the immutable picture of the upstream services the data plane
 * reads (it never calls Consul). Built by pure functions from health entries.
 */

import { META } from '../../lib/consul-meta.js';
import { deepFreeze } from '../../lib/deep-freeze.js';
import type { HealthEntry } from './consul-client.js';

export interface CatalogInstance {
  readonly id: string;
  readonly node: string;
  readonly address: string;
  /** The instance's IPv6 address (tagged address lan_ipv6), when it has one: captured like address. */
  readonly address6?: string;
  readonly appPort: number;
  /** Envoy's inbound port on that host; equals appPort for instances outside the mesh. */
  readonly meshPort: number;
  /** "" for instances outside the mesh. */
  readonly spiffeId: string;
  readonly protocol: string;
  readonly tags: readonly string[];
  readonly meta: Readonly<Record<string, string>>;
  readonly weight: number;
  readonly datacenter: string;
  readonly zone: string;
  /** Instances with a critical check are left out; the rest are passing or warning. */
  readonly health: 'passing' | 'warning';
}

export interface ServiceView {
  readonly name: string;
  readonly instances: readonly CatalogInstance[];
  /** "consul" once a query answered; "disk" while it is the last known view from dataDir. */
  readonly source: 'consul' | 'disk';
}

export interface CatalogView {
  /** Grows by one with every published view. */
  readonly version: number;
  readonly services: Readonly<Record<string, ServiceView>>;
}

export const EMPTY_VIEW: CatalogView = deepFreeze({ version: 0, services: {} });

/** The worst of some Consul check statuses; anything but passing or warning counts as critical. */
export function worstStatus(statuses: readonly string[]): 'passing' | 'warning' | 'critical' {
  if (statuses.some((s) => s !== 'passing' && s !== 'warning')) return 'critical';
  return statuses.includes('warning') ? 'warning' : 'passing';
}

function health(entry: HealthEntry): 'passing' | 'warning' | 'critical' {
  return worstStatus(entry.checks.map((c) => c.status));
}

export function toInstance(entry: HealthEntry): CatalogInstance | undefined {
  const status = health(entry);
  if (status === 'critical') return undefined;
  const metaPort = Number(entry.meta[META.meshPort]);
  return {
    id: entry.serviceId,
    node: entry.node,
    address: entry.address,
    ...(entry.address6 === undefined ? {} : { address6: entry.address6 }),
    appPort: entry.port,
    meshPort: entry.taggedMeshPort ?? (Number.isInteger(metaPort) && metaPort > 0 ? metaPort : entry.port),
    spiffeId: entry.meta[META.spiffeId] ?? '',
    protocol: entry.meta[META.protocol] ?? 'tcp',
    tags: entry.tags,
    meta: entry.meta,
    weight: entry.weight,
    datacenter: entry.datacenter,
    zone: entry.meta[META.zone] ?? '',
    health: status,
  };
}

/** The healthy instances of a health answer, sorted by node then id. */
export function toInstances(entries: readonly HealthEntry[]): CatalogInstance[] {
  return entries
    .map(toInstance)
    .filter((i): i is CatalogInstance => i !== undefined)
    .sort((a, b) => (a.node === b.node ? (a.id < b.id ? -1 : 1) : a.node < b.node ? -1 : 1));
}

export function makeView(version: number, services: Iterable<ServiceView>): CatalogView {
  const out: Record<string, ServiceView> = {};
  for (const s of [...services].sort((a, b) => (a.name < b.name ? -1 : 1))) out[s.name] = s;
  return deepFreeze({ version, services: out });
}

export function sameInstances(a: readonly CatalogInstance[], b: readonly CatalogInstance[]): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
