/**
 * Consistency checks a snapshot must pass before it is served: every EDS
 * cluster has its ClusterLoadAssignment, every RDS name a listener references
 * exists, every SDS secret a transport socket references exists, every cluster
 * a route or tcp_proxy names exists (weighted clusters and mirrors included), no duplicate names (found while building)
 * or keys that differ from the resource name, no two listeners on one address,
 * no two filter chains of a listener matching the same connections (Envoy
 * rejects the listener), no secret with empty PEM (an empty trust bundle
 * would turn off chain checks).
 */
import type { XdsResource } from './resources/common.js';
import { RESOURCE_KINDS, type ResourceKind, resourceName, type Snapshot } from './snapshot.js';

interface References {
  routes: Set<string>;
  secrets: Set<string>;
  clusters: Set<string>;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Collects RDS, SDS and cluster names referenced anywhere inside a resource. */
function collectReferences(value: unknown, refs: References): void {
  if (Array.isArray(value)) {
    for (const item of value) collectReferences(item, refs);
    return;
  }
  if (!isObject(value)) return;
  const rds = value.rds;
  if (isObject(rds) && typeof rds.route_config_name === 'string') refs.routes.add(rds.route_config_name);
  if (isObject(value.sds_config) && typeof value.name === 'string') refs.secrets.add(value.name);
  if (typeof value.cluster === 'string') refs.clusters.add(value.cluster);
  const weighted = value.weighted_clusters;
  if (isObject(weighted) && Array.isArray(weighted.clusters))
    for (const c of weighted.clusters) if (isObject(c) && typeof c.name === 'string') refs.clusters.add(c.name);
  for (const child of Object.values(value)) collectReferences(child, refs);
}

/**
 * References of a resource, computed once per resource object: snapshots are
 * immutable and a rebuild reuses the objects of unchanged resources, so a
 * check after a one-endpoint change walks only what changed.
 */
const referenceCache = new WeakMap<object, References>();

function referencesOf(resource: XdsResource): References {
  let refs = referenceCache.get(resource);
  if (refs === undefined) {
    refs = { routes: new Set(), secrets: new Set(), clusters: new Set() };
    collectReferences(resource, refs);
    if (Object.isFrozen(resource)) referenceCache.set(resource, refs);
  }
  return refs;
}

function socketText(address: unknown): string | undefined {
  if (!isObject(address) || !isObject(address.socket_address)) return undefined;
  return `${String(address.socket_address.address)}:${String(address.socket_address.port_value)}`;
}

/** The addresses a listener binds: its address and its additional_addresses. */
function listenerAddresses(listener: XdsResource): string[] {
  const more = Array.isArray(listener.additional_addresses) ? listener.additional_addresses : [];
  return [listener.address, ...more.map((a: unknown) => (isObject(a) ? a.address : undefined))]
    .map(socketText)
    .filter((a): a is string => a !== undefined);
}

/**
 * The (port, prefix, transport, rest) combinations a filter chain matches:
 * Envoy rejects a listener where two chains share one (e.g. two capture
 * chains claiming one address:port).
 */
function chainMatchKeys(chain: unknown): string[] {
  const match = isObject(chain) && isObject(chain.filter_chain_match) ? chain.filter_chain_match : {};
  const { destination_port, prefix_ranges, transport_protocol, ...rest } = match;
  const port = isObject(destination_port) ? destination_port.value : destination_port;
  const prefixes = Array.isArray(prefix_ranges) && prefix_ranges.length > 0 ? prefix_ranges : [undefined];
  return prefixes.map((p: unknown) => {
    const len = isObject(p) ? (isObject(p.prefix_len) ? p.prefix_len.value : p.prefix_len) : undefined;
    return JSON.stringify([
      port ?? null,
      isObject(p) ? `${String(p.address_prefix)}/${String(len)}` : null,
      transport_protocol ?? null,
      rest,
    ]);
  });
}

/** Per listener object (frozen, reused across rebuilds): its chain problems and addresses, computed once. */
const listenerCache = new WeakMap<object, { readonly chains: readonly string[]; readonly addresses: readonly string[] }>();

function listenerFacts(listener: XdsResource): { readonly chains: readonly string[]; readonly addresses: readonly string[] } {
  let facts = listenerCache.get(listener);
  if (facts === undefined) {
    facts = { chains: duplicateChainMatches(listener), addresses: listenerAddresses(listener) };
    if (Object.isFrozen(listener)) listenerCache.set(listener, facts);
  }
  return facts;
}

function duplicateChainMatches(listener: XdsResource): string[] {
  const seen = new Map<string, string>();
  const problems: string[] = [];
  const chains = Array.isArray(listener.filter_chains) ? listener.filter_chains : [];
  chains.forEach((chain: unknown, index: number) => {
    const name = isObject(chain) && typeof chain.name === 'string' ? chain.name : `#${index}`;
    for (const key of chainMatchKeys(chain)) {
      const other = seen.get(key);
      if (other !== undefined && other !== name)
        problems.push(`listener ${JSON.stringify(listener.name)}: filter chains ${other} and ${name} match the same connections ${key}`);
      else seen.set(key, name);
    }
  });
  return problems;
}

const NONE: ReadonlyMap<string, XdsResource> = new Map();

function sameKeys(a: ReadonlyMap<string, unknown>, b: ReadonlyMap<string, unknown>): boolean {
  if (a === b) return true;
  if (a.size !== b.size) return false;
  for (const key of a.keys()) if (!b.has(key)) return false;
  return true;
}

/**
 * Returns the snapshot's problems, one sentence each; empty when it may be
 * served.
 *
 * `base`: a snapshot that passed this check (the one served). Each section's
 * answer depends on one kind's resources and on the other kinds' names only.
 * When no kind's names changed, a section whose kind is the very same map as
 * in `base` (makeSnapshot takes unchanged kinds over) gives the answer it gave
 * then, none, and is skipped: a one-endpoint change checks the endpoints.
 */
export function checkSnapshot(snapshot: Snapshot, base?: Snapshot): string[] {
  const problems = [...snapshot.buildProblems];
  const { listeners, clusters, endpoints, routes, secrets } = snapshot.resources;
  const changed = (kind: ResourceKind) => base === undefined || snapshot.resources[kind] !== base.resources[kind];
  const namesKept = base !== undefined && RESOURCE_KINDS.every((k) => !changed(k) || sameKeys(snapshot.resources[k], base.resources[k]));
  const check = (kind: ResourceKind) => !namesKept || changed(kind);

  for (const kind of RESOURCE_KINDS) {
    if (!check(kind)) continue;
    for (const [key, resource] of snapshot.resources[kind]) {
      const name = resourceName(kind, resource);
      if (name !== key) problems.push(`${kind}: key ${JSON.stringify(key)} holds a resource named ${JSON.stringify(name)}`);
    }
  }

  for (const [name, cluster] of check('clusters') ? clusters : NONE) {
    if (cluster.type !== 'EDS') continue;
    const eds = cluster.eds_cluster_config;
    const serviceName = isObject(eds) && typeof eds.service_name === 'string' ? eds.service_name : name;
    if (!endpoints.has(serviceName))
      problems.push(`cluster ${JSON.stringify(name)}: no ClusterLoadAssignment ${JSON.stringify(serviceName)}`);
  }

  const addresses = new Map<string, string>();
  for (const [name, listener] of check('listeners') ? listeners : NONE) {
    const refs = referencesOf(listener);
    for (const route of refs.routes) {
      if (!routes.has(route))
        problems.push(`listener ${JSON.stringify(name)}: route configuration ${JSON.stringify(route)} does not exist`);
    }
    for (const secret of refs.secrets) {
      if (!secrets.has(secret)) problems.push(`listener ${JSON.stringify(name)}: secret ${JSON.stringify(secret)} does not exist`);
    }
    for (const cluster of refs.clusters) {
      if (!clusters.has(cluster)) problems.push(`listener ${JSON.stringify(name)}: cluster ${JSON.stringify(cluster)} does not exist`);
    }
    const facts = listenerFacts(listener);
    problems.push(...facts.chains);
    for (const address of facts.addresses) {
      const other = addresses.get(address);
      if (other !== undefined) problems.push(`listeners ${JSON.stringify(other)} and ${JSON.stringify(name)} both bind ${address}`);
      else addresses.set(address, name);
    }
  }

  for (const [name, cluster] of check('clusters') ? clusters : NONE) {
    const refs = referencesOf(cluster);
    for (const secret of refs.secrets) {
      if (!secrets.has(secret)) problems.push(`cluster ${JSON.stringify(name)}: secret ${JSON.stringify(secret)} does not exist`);
    }
  }

  for (const [name, secret] of check('secrets') ? secrets : NONE) {
    const pems = [
      ['trust bundle', (secret.validation_context as { trusted_ca?: { inline_string?: unknown } } | undefined)?.trusted_ca],
      ['certificate chain', (secret.tls_certificate as { certificate_chain?: { inline_string?: unknown } } | undefined)?.certificate_chain],
      ['private key', (secret.tls_certificate as { private_key?: { inline_string?: unknown } } | undefined)?.private_key],
    ] as const;
    for (const [what, source] of pems) {
      if (source !== undefined && (typeof source.inline_string !== 'string' || source.inline_string.trim() === '')) {
        problems.push(`secret ${JSON.stringify(name)}: empty ${what}`);
      }
    }
  }

  for (const [name, route] of check('routes') ? routes : NONE) {
    const refs = referencesOf(route);
    for (const cluster of refs.clusters) {
      if (!clusters.has(cluster))
        problems.push(`route configuration ${JSON.stringify(name)}: cluster ${JSON.stringify(cluster)} does not exist`);
    }
  }
  return problems;
}
