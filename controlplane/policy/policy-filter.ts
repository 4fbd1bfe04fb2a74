/**
 * Which policy resources concern a Watch subscriber. Pure.
 *
 * A subscriber names the services its node's workloads serve and call, and
 * its workloads' SPIFFE IDs. A resource concerns it when:
 * - ServiceIdentity, TrafficRoute, TrafficPolicy: `spec.service` is one of
 *   the services (and for a TrafficRoute, any `http[].mirror.service`);
 * - AuthorizationPolicy, PeerAuthentication, RateLimit: `spec.target.service`
 *   is one of the services or `spec.target.spiffeId` one of the SPIFFE IDs;
 * - MeshTelemetry (MESH_WIDE_KINDS): always; it has no target.
 *
 * Resources are indexed once per store revision (by service and by SPIFFE ID),
 * so a filter costs the subscriber's interest, not the size of the store.
 */
import { MESH_WIDE_KINDS, type StoredPolicy } from '../../lib/policy/schema.js';

export interface PolicyInterest {
  readonly services: readonly string[];
  readonly spiffeIds: readonly string[];
}

/** Sorted, without duplicates or empty strings: equal interests get equal keys. */
export function normalizeInterest(interest: PolicyInterest): PolicyInterest {
  const clean = (values: readonly string[]) => [...new Set(values.filter((v) => typeof v === 'string' && v !== ''))].sort();
  return { services: clean(interest.services), spiffeIds: clean(interest.spiffeIds) };
}

/** The key subscribers with the same (normalized) interest share. */
export function interestKey(interest: PolicyInterest): string {
  const n = normalizeInterest(interest);
  return `${n.services.join(',')}|${n.spiffeIds.join(',')}`;
}

const record = (value: unknown): Record<string, unknown> =>
  typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {};
const text = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);

/** What a resource is about: the services and SPIFFE IDs that make it concern a subscriber. */
export function policySubjects(resource: Pick<StoredPolicy, 'kind' | 'source'>): { services: string[]; spiffeIds: string[] } {
  const spec = record(record(resource.source).spec);
  switch (resource.kind) {
    case 'ServiceIdentity':
    case 'TrafficPolicy': {
      const service = text(spec.service);
      return { services: service === undefined ? [] : [service], spiffeIds: [] };
    }
    case 'TrafficRoute': {
      const services = new Set<string>();
      const service = text(spec.service);
      if (service !== undefined) services.add(service);
      for (const rule of Array.isArray(spec.http) ? spec.http : []) {
        const mirror = text(record(record(rule).mirror).service);
        if (mirror !== undefined) services.add(mirror);
      }
      return { services: [...services], spiffeIds: [] };
    }
    case 'AuthorizationPolicy':
    case 'PeerAuthentication':
    case 'RateLimit': {
      const target = record(spec.target);
      const service = text(target.service);
      const spiffeId = text(target.spiffeId);
      return { services: service === undefined ? [] : [service], spiffeIds: spiffeId === undefined ? [] : [spiffeId] };
    }
    default:
      return { services: [], spiffeIds: [] };
  }
}

/** The resources of one store revision, indexed by what they concern. */
export class PolicyIndex<R extends Pick<StoredPolicy, 'kind' | 'name' | 'source'>> {
  private readonly byService = new Map<string, R[]>();
  private readonly bySpiffeId = new Map<string, R[]>();
  /** Resources of the kinds with no target: every interest gets them. */
  private readonly meshWide: R[] = [];
  private readonly order = new Map<R, number>();

  constructor(readonly resources: readonly R[]) {
    resources.forEach((r, i) => {
      this.order.set(r, i);
      if (MESH_WIDE_KINDS.has(r.kind)) {
        this.meshWide.push(r);
        return;
      }
      const { services, spiffeIds } = policySubjects(r);
      for (const s of services) PolicyIndex.push(this.byService, s, r);
      for (const id of spiffeIds) PolicyIndex.push(this.bySpiffeId, id, r);
    });
  }

  private static push<R>(map: Map<string, R[]>, key: string, r: R): void {
    const list = map.get(key);
    if (list === undefined) map.set(key, [r]);
    else list.push(r);
  }

  /** The resources that concern this interest (the mesh-wide ones always), in store order (kind, name), each once. */
  filter(interest: PolicyInterest): R[] {
    const hits = new Set<R>(this.meshWide);
    for (const s of interest.services) for (const r of this.byService.get(s) ?? []) hits.add(r);
    for (const id of interest.spiffeIds) for (const r of this.bySpiffeId.get(id) ?? []) hits.add(r);
    return [...hits].sort((a, b) => (this.order.get(a) ?? 0) - (this.order.get(b) ?? 0));
  }
}

/** Identifies a filtered set's content: equal fingerprints, nothing to send. */
export function setFingerprint(resources: ReadonlyArray<Pick<StoredPolicy, 'kind' | 'name' | 'version' | 'revision'>>): string {
  return resources.map((r) => `${r.kind}/${r.name}@${r.version}.${r.revision}`).join(';');
}
