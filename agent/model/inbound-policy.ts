/**
 * The server-side policy in force for one local workload: authorization,
 * mTLS mode and local rate limit. Pure.
 *
 * For each kind the resource targeting the workload's SPIFFE ID wins over one
 * targeting its service (the workload name is its Consul service name). When
 * several resources of one kind target the same thing, the first by name is
 * in force and the others are reported (`shadowed`).
 */
import type { AuthorizationPolicySpec, PolicyDocument, PolicyTarget, RateLimitSpec } from '../../lib/policy/schema.js';

export interface Named<S> {
  /** The policy resource's metadata.name (it appears in stat names and logs). */
  readonly name: string;
  readonly spec: S;
}

/** Absent fields: no such policy (allow everything, strict mTLS, no rate limit). */
export interface InboundPolicy {
  readonly authorization?: Named<AuthorizationPolicySpec>;
  /** Only when not strict (strict is the default with no resource). */
  readonly mtls?: { readonly name: string; readonly mode: 'permissive' };
  readonly rateLimit?: Named<RateLimitSpec>;
}

type Targeted = Extract<PolicyDocument, { spec: { target: PolicyTarget } }>;

function effective(
  policies: readonly PolicyDocument[],
  kind: Targeted['kind'],
  workload: { readonly name: string; readonly spiffeId: string },
  shadowed: string[],
): Targeted | undefined {
  const ofKind = policies.filter((p): p is Targeted => p.kind === kind).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const byId = ofKind.filter((p) => p.spec.target.spiffeId === workload.spiffeId);
  const byService = ofKind.filter((p) => p.spec.target.service === workload.name);
  const candidates = byId.length > 0 ? byId : byService;
  for (const extra of candidates.slice(1)) shadowed.push(`${kind} ${extra.name} (${candidates[0]?.name} is in force)`);
  return candidates[0];
}

export function inboundPolicy(
  policies: readonly PolicyDocument[],
  workload: { readonly name: string; readonly spiffeId: string },
): { readonly policy: InboundPolicy; readonly shadowed: readonly string[] } {
  const shadowed: string[] = [];
  const found = (kind: Targeted['kind']) => effective(policies, kind, workload, shadowed);
  const authz = found('AuthorizationPolicy');
  const peer = found('PeerAuthentication');
  const limit = found('RateLimit');
  return {
    policy: {
      ...(authz?.kind === 'AuthorizationPolicy' ? { authorization: { name: authz.name, spec: authz.spec } } : {}),
      ...(peer?.kind === 'PeerAuthentication' && peer.spec.mode === 'permissive'
        ? { mtls: { name: peer.name, mode: peer.spec.mode } }
        : {}),
      ...(limit?.kind === 'RateLimit' ? { rateLimit: { name: limit.name, spec: limit.spec } } : {}),
    },
    shadowed,
  };
}

/** True when the policy changes nothing (no field set). */
export function isEmptyInboundPolicy(policy: InboundPolicy): boolean {
  return policy.authorization === undefined && policy.mtls === undefined && policy.rateLimit === undefined;
}
