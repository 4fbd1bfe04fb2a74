/**
 * A snapshot: every resource one Envoy gets, built purely from the ProxyModel
 * and the identities, immutable, versioned by content hash (per resource and
 * as a whole), and checked for consistency before it is served.
 */
import type { ProxyModel } from '../model/proxy-model.js';
import { isHttpLike } from '../model/proxy-model.js';
import { contentHash } from './content-hash.js';
import type { XdsResource } from './resources/common.js';
import { buildEndpoints } from './resources/endpoints.js';
import { buildInboundListener } from './resources/inbound-listener.js';
import { buildLocalAppCluster } from './resources/local-app-cluster.js';
import { buildOutboundCluster } from './resources/outbound-cluster.js';
import { buildOutboundListener } from './resources/outbound-listener.js';
import { buildOutboundRouteConfig } from './resources/route-config.js';
import { buildBundleSecret, buildIdentitySecret } from './resources/secrets.js';

export const RESOURCE_KINDS = ['listeners', 'clusters', 'endpoints', 'routes', 'secrets'] as const;
export type ResourceKind = (typeof RESOURCE_KINDS)[number];

export interface IdentityMaterial {
  readonly chainPem: string;
  readonly keyPem: string;
}

export interface Identities {
  /** SPIFFE ID -> the SVID chain and key of a local workload. */
  readonly certs: ReadonlyMap<string, IdentityMaterial>;
  readonly bundlePem: string;
}

export type ResourceMaps = { readonly [K in ResourceKind]: ReadonlyMap<string, XdsResource> };
export type VersionMaps = { readonly [K in ResourceKind]: ReadonlyMap<string, string> };

export interface Snapshot {
  /** Content hash of every (kind, name, version): equal models give equal versions. */
  readonly version: string;
  readonly resources: ResourceMaps;
  /** Content hash of each resource, by kind and name. */
  readonly versions: VersionMaps;
  /** Problems found while building (name collisions, unknown callers); checkSnapshot reports them. */
  readonly buildProblems: readonly string[];
}

/** The name a resource is served under (ClusterLoadAssignment uses cluster_name). */
export function resourceName(kind: ResourceKind, resource: XdsResource): string {
  const name = kind === 'endpoints' ? resource.cluster_name : resource.name;
  return typeof name === 'string' ? name : '';
}

function deepFreeze<V>(value: V): V {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/**
 * Makes an immutable snapshot of the given resources (keyed by the map key)
 * and computes its versions. Exported so tests and later stages can assemble
 * snapshots directly.
 */
export function makeSnapshot(resources: { [K in ResourceKind]: Map<string, XdsResource> }, buildProblems: string[] = []): Snapshot {
  const versions = {} as { [K in ResourceKind]: Map<string, string> };
  const summary: Array<[ResourceKind, Array<[string, string]>]> = [];
  for (const kind of RESOURCE_KINDS) {
    const byName = new Map<string, string>();
    for (const name of [...resources[kind].keys()].sort()) {
      deepFreeze(resources[kind].get(name));
      byName.set(name, contentHash(resources[kind].get(name)));
    }
    versions[kind] = byName;
    summary.push([kind, [...byName.entries()]]);
  }
  return Object.freeze({
    version: contentHash(summary),
    resources: Object.freeze({ ...resources }),
    versions: Object.freeze(versions),
    buildProblems: Object.freeze([...buildProblems]),
  });
}

export function emptyResources(): { [K in ResourceKind]: Map<string, XdsResource> } {
  return { listeners: new Map(), clusters: new Map(), endpoints: new Map(), routes: new Map(), secrets: new Map() };
}

export function buildSnapshot(model: ProxyModel, identities: Identities): Snapshot {
  const resources = emptyResources();
  const problems: string[] = [];
  const add = (kind: ResourceKind, resource: XdsResource): void => {
    const name = resourceName(kind, resource);
    const existing = resources[kind].get(name);
    if (existing !== undefined && contentHash(existing) !== contentHash(resource)) {
      problems.push(`${kind}: duplicate name ${JSON.stringify(name)} with different content`);
      return;
    }
    resources[kind].set(name, resource);
  };

  for (const workload of model.workloads) {
    add('listeners', buildInboundListener(workload, model.trustDomain));
    add('clusters', buildLocalAppCluster(workload));
    const cert = identities.certs.get(workload.spiffeId);
    if (cert !== undefined) add('secrets', buildIdentitySecret(workload.spiffeId, cert.chainPem, cert.keyPem));
  }
  add('secrets', buildBundleSecret(identities.bundlePem));

  for (const upstream of model.upstreams) {
    const caller = model.workloads.find((w) => w.name === upstream.workload);
    if (caller === undefined) {
      problems.push(
        `upstream ${upstream.service} on port ${upstream.localPort}: caller workload ${JSON.stringify(upstream.workload)} is not in the model`,
      );
      continue;
    }
    add('listeners', buildOutboundListener(upstream));
    add('clusters', buildOutboundCluster(upstream, caller.spiffeId));
    add('endpoints', buildEndpoints(upstream));
    if (isHttpLike(upstream.protocol)) add('routes', buildOutboundRouteConfig(upstream));
  }
  return makeSnapshot(resources, problems);
}
