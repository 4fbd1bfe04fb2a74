/**
 * TrafficRoute and TrafficPolicy documents -> the traffic part of one
 * upstream (agent/model/proxy-model.ts ModelTraffic). Pure.
 *
 * - The route and the policy of a service are the documents whose
 *   `spec.service` names it; with several, the first by resource name wins
 *   (the control plane keeps one per service in practice).
 * - A subset is the catalog instances carrying all its tags and all its meta
 *   values (Consul service tags / meta).
 * - Locality: with `locality.preferLocalZone` and a known node zone, the
 *   caller's zone is recorded so endpoints of that zone get priority 0.
 */
import type { PolicyDocument, TrafficPolicySpec, TrafficRouteSpec } from '../../lib/policy/schema.js';
import type { CatalogInstance } from '../discovery/catalog-view.js';
import type { ModelInstance, ModelSubset, ModelTraffic } from './proxy-model.js';

function byName<T extends { readonly name: string }>(a: T, b: T): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

export function trafficRouteFor(policies: readonly PolicyDocument[], service: string): TrafficRouteSpec | undefined {
  const docs = policies.filter((d) => d.kind === 'TrafficRoute' && d.spec.service === service).sort(byName);
  return docs[0]?.kind === 'TrafficRoute' ? docs[0].spec : undefined;
}

export function trafficPolicyFor(policies: readonly PolicyDocument[], service: string): TrafficPolicySpec | undefined {
  const docs = policies.filter((d) => d.kind === 'TrafficPolicy' && d.spec.service === service).sort(byName);
  return docs[0]?.kind === 'TrafficPolicy' ? docs[0].spec : undefined;
}

/** True when the instance carries all the subset's tags and meta values. */
export function inSubset(instance: CatalogInstance, subset: { tags: readonly string[]; meta: Readonly<Record<string, string>> }): boolean {
  return subset.tags.every((t) => instance.tags.includes(t)) && Object.entries(subset.meta).every(([k, v]) => instance.meta[k] === v);
}

/** The mesh instance of a catalog instance (callers pass only instances with a SPIFFE ID). */
export function toModelInstance(i: CatalogInstance): ModelInstance {
  return { address: i.address, meshPort: i.meshPort, spiffeId: i.spiffeId, weight: Math.max(1, i.weight), healthy: true, zone: i.zone };
}

/** Services a route mirrors to (other than its own). */
export function mirroredServices(route: TrafficRouteSpec | undefined): string[] {
  const out = new Set<string>();
  for (const rule of route?.http ?? [])
    if (rule.mirror?.service !== undefined && rule.mirror.service !== route?.service) out.add(rule.mirror.service);
  return [...out].sort();
}

/**
 * The traffic of `service` given its mesh instances; undefined when no
 * TrafficRoute or TrafficPolicy names it (the upstream is built as before).
 */
export function resolveTraffic(
  policies: readonly PolicyDocument[],
  service: string,
  inMesh: readonly CatalogInstance[],
  zone: string | undefined,
): ModelTraffic | undefined {
  const route = trafficRouteFor(policies, service);
  const policy = trafficPolicyFor(policies, service);
  if (route === undefined && policy === undefined) return undefined;
  const subsets: ModelSubset[] = (route?.subsets ?? [])
    .map((s) => ({ name: s.name, instances: inMesh.filter((i) => inSubset(i, s)).map(toModelInstance) }))
    .sort(byName);
  const preferLocal = policy?.locality?.preferLocalZone === true && zone !== undefined && zone !== '';
  return {
    ...(route === undefined ? {} : { route }),
    ...(policy === undefined ? {} : { policy }),
    subsets,
    ...(preferLocal ? { localZone: zone } : {}),
  };
}
