/**
 * Secure naming: which SPIFFE IDs may serve an upstream service. Pure.
 *
 * The answer comes from the control plane's policy, never from the catalog:
 * - the ServiceIdentity resources for (namespace N, service S), their
 *   `allowedIdentities` together (exact IDs, or patterns where a whole path
 *   segment is `*`, matching exactly one segment);
 * - with none, exactly `spiffe://<td>/ns/<N>/sa/<S>`.
 * N is the namespace the calling workload file declares for the upstream
 * (`upstreams[].namespace`, default the caller's own namespace).
 *
 * The catalog may narrow this set (an instance's `mesh_spiffe_id` says which
 * accepted identity it presents), never widen it: an instance claiming an
 * identity outside the set is left out of the endpoints, and the cluster's
 * SAN matchers are built from the accepted set, not from instance meta.
 */
import type { PolicyDocument } from '../../lib/policy/schema.js';

export interface AcceptedIdentities {
  /** Exact SPIFFE IDs and one-segment `*` patterns, sorted and unique; never empty. */
  readonly patterns: readonly string[];
  /** Where they came from: the ServiceIdentity resources named, or the default rule. */
  readonly source: { readonly kind: 'policy'; readonly names: readonly string[] } | { readonly kind: 'default' };
}

/** The default server identity of service S in namespace N. */
export function defaultServerIdentity(trustDomain: string, namespace: string, service: string): string {
  return `spiffe://${trustDomain}/ns/${namespace}/sa/${service}`;
}

/** The identities allowed to serve `service` in `namespace`, from policy or the default rule. */
export function acceptedIdentities(
  policies: readonly PolicyDocument[],
  trustDomain: string,
  service: string,
  namespace: string,
): AcceptedIdentities {
  const names: string[] = [];
  const patterns = new Set<string>();
  for (const doc of policies) {
    if (doc.kind !== 'ServiceIdentity' || doc.spec.service !== service || doc.spec.namespace !== namespace) continue;
    names.push(doc.name);
    for (const p of doc.spec.allowedIdentities) patterns.add(p);
  }
  if (names.length === 0) return { patterns: [defaultServerIdentity(trustDomain, namespace, service)], source: { kind: 'default' } };
  return { patterns: [...patterns].sort(), source: { kind: 'policy', names: names.sort() } };
}

/** True when the pattern has a `*` segment. */
export function isIdentityPattern(pattern: string): boolean {
  return pattern.split('/').includes('*');
}

/** Whether spiffeId matches pattern: equal, segment by segment, where `*` stands for exactly one non-empty segment. */
export function identityMatches(pattern: string, spiffeId: string): boolean {
  if (!isIdentityPattern(pattern)) return pattern === spiffeId;
  const want = pattern.split('/');
  const have = spiffeId.split('/');
  if (want.length !== have.length) return false;
  return want.every((seg, i) => (seg === '*' ? (have[i] ?? '') !== '' : seg === have[i]));
}

export function identityAccepted(accepted: AcceptedIdentities, spiffeId: string): boolean {
  return accepted.patterns.some((p) => identityMatches(p, spiffeId));
}

/** Splits catalog instances into those whose claimed identity is accepted and those left out. */
export function partitionByIdentity<I extends { readonly spiffeId: string }>(
  accepted: AcceptedIdentities,
  instances: readonly I[],
): { readonly kept: I[]; readonly refused: I[] } {
  const kept: I[] = [];
  const refused: I[] = [];
  for (const i of instances) (identityAccepted(accepted, i.spiffeId) ? kept : refused).push(i);
  return { kept, refused };
}

/** The model problem text for instances left out because they claim an identity not allowed to serve the service. */
export function refusedReason(
  service: string,
  namespace: string,
  accepted: AcceptedIdentities,
  refused: ReadonlyArray<{ readonly id: string; readonly spiffeId: string }>,
): string {
  const who = refused.map((i) => `${i.id} (${i.spiffeId})`).join(', ');
  const rule =
    accepted.source.kind === 'policy'
      ? `ServiceIdentity ${accepted.source.names.join(', ')}`
      : `the default rule (no ServiceIdentity for ${namespace}/${service})`;
  return `upstream ${service}: ${refused.length} catalog instance(s) left out, their identity may not serve ${service}: ${who}; accepted by ${rule}: ${accepted.patterns.join(', ')}`;
}
