/**
 * The pure decisions of pod attestation: what a TokenReview answer means,
 * which refusal code a refused token gets, whether a pod may get an SVID, and
 * the names of node records. The token's own claims are decoded WITHOUT
 * verification and used only to explain a refusal (expired, wrong audience,
 * pod gone) or to bound a TTL after TokenReview accepted the token; they never
 * grant anything.
 */
import { MeshError } from '../../lib/errors.js';
import type { KubeAllowRule } from './attestation-config.js';
import type { TokenReviewOutcome } from './pod-reviewer.js';

export const POD_NAME_KEY = 'authentication.kubernetes.io/pod-name';
export const POD_UID_KEY = 'authentication.kubernetes.io/pod-uid';
const SA_PREFIX = 'system:serviceaccount:';

export interface PodIdentity {
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly pod: string;
  readonly podUid: string;
}

/** What an unverified token says of itself (for explanations only). */
export interface UnverifiedClaims {
  /** Seconds since the epoch. */
  readonly exp?: number;
  readonly aud: readonly string[];
  readonly namespace?: string;
  readonly pod?: { readonly name: string; readonly uid: string };
}

/** Decodes a JWT's payload without verifying it; undefined when it is not a JWT. */
export function unverifiedClaims(token: string): UnverifiedClaims | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  let payload: Record<string, unknown>;
  try {
    payload = JSON.parse(Buffer.from(parts[1] as string, 'base64url').toString('utf8')) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (payload === null || typeof payload !== 'object') return undefined;
  const aud =
    typeof payload.aud === 'string' ? [payload.aud] : Array.isArray(payload.aud) ? payload.aud.filter((a) => typeof a === 'string') : [];
  const kube = (payload['kubernetes.io'] ?? {}) as { namespace?: unknown; pod?: { name?: unknown; uid?: unknown } };
  const pod = kube.pod;
  return {
    ...(typeof payload.exp === 'number' ? { exp: payload.exp } : {}),
    aud,
    ...(typeof kube.namespace === 'string' ? { namespace: kube.namespace } : {}),
    ...(pod && typeof pod.name === 'string' && typeof pod.uid === 'string' ? { pod: { name: pod.name, uid: pod.uid } } : {}),
  };
}

/**
 * The code of a token TokenReview refused, from its unverified claims:
 * expired, for another audience, or (when it names a pod) undecided until the
 * pod is looked up: `pod-check` then asks the caller to look.
 */
export function refusalOf(
  claims: UnverifiedClaims | undefined,
  audience: string,
  nowMs: number,
  reviewError: string,
): MeshError | 'pod-check' {
  const why = reviewError.slice(0, 300);
  if (claims === undefined) return new MeshError('MESH_E_KUBE_TOKEN_INVALID', `the token is not a JWT; TokenReview refused it (${why})`);
  if (claims.exp !== undefined && claims.exp * 1000 <= nowMs) {
    return new MeshError(
      'MESH_E_KUBE_TOKEN_EXPIRED',
      `the token expired at ${new Date(claims.exp * 1000).toISOString()}; read the projected token file again (the kubelet refreshes it)`,
      { details: { expiredAt: claims.exp * 1000 } },
    );
  }
  if (!claims.aud.includes(audience)) {
    return new MeshError(
      'MESH_E_KUBE_TOKEN_AUDIENCE',
      `the token is for ${claims.aud.join(', ') || 'no audience'}, not ${audience}; project it with audience: ${audience}`,
      { details: { expected: audience, audiences: [...claims.aud] } },
    );
  }
  if (claims.pod !== undefined) return 'pod-check';
  return new MeshError('MESH_E_KUBE_TOKEN_INVALID', `TokenReview refused the token: ${why}`);
}

/** The pod identity of a token TokenReview accepted for `audience`. */
export function identityOf(outcome: Extract<TokenReviewOutcome, { authenticated: true }>, audience: string): PodIdentity {
  if (outcome.audiences.length > 0 && !outcome.audiences.includes(audience)) {
    throw new MeshError(
      'MESH_E_KUBE_TOKEN_AUDIENCE',
      `TokenReview accepted the token for ${outcome.audiences.join(', ')}, not ${audience}`,
    );
  }
  if (!outcome.username.startsWith(SA_PREFIX)) {
    throw new MeshError('MESH_E_KUBE_TOKEN_INVALID', `the token belongs to ${outcome.username}, not to a service account`);
  }
  const [namespace, serviceAccount, ...rest] = outcome.username.slice(SA_PREFIX.length).split(':');
  if (namespace === undefined || serviceAccount === undefined || rest.length > 0 || namespace === '' || serviceAccount === '') {
    throw new MeshError('MESH_E_KUBE_TOKEN_INVALID', `the token's user ${outcome.username} is not system:serviceaccount:<ns>:<sa>`);
  }
  const pod = outcome.extra[POD_NAME_KEY]?.[0];
  const podUid = outcome.extra[POD_UID_KEY]?.[0];
  if (pod === undefined || podUid === undefined) {
    throw new MeshError(
      'MESH_E_KUBE_TOKEN_NOT_POD_BOUND',
      `the token of ${namespace}/${serviceAccount} is not bound to a pod; mount a projected service-account token`,
      { details: { namespace, serviceAccount } },
    );
  }
  return { namespace, serviceAccount, pod, podUid };
}

function globMatch(pattern: string, value: string): boolean {
  const re = new RegExp(
    `^${pattern
      .split('*')
      .map((p) => p.replace(/[.\\^$+?()[\]{}|-]/g, '\\$&'))
      .join('.*')}$`,
  );
  return re.test(value);
}

/** MESH_E_KUBE_NOT_ALLOWED unless a rule of kubernetes.attestation.allow matches the namespace and the service account. */
export function requireAllowed(rules: readonly KubeAllowRule[], id: Pick<PodIdentity, 'namespace' | 'serviceAccount'>): void {
  if (rules.some((r) => globMatch(r.namespace, id.namespace) && globMatch(r.serviceAccount, id.serviceAccount))) return;
  const nsAllowed = rules.some((r) => globMatch(r.namespace, id.namespace));
  throw new MeshError(
    'MESH_E_KUBE_NOT_ALLOWED',
    nsAllowed
      ? `service account ${id.serviceAccount} of namespace ${id.namespace} may not get SVIDs (kubernetes.attestation.allow)`
      : `namespace ${id.namespace} may not get SVIDs (kubernetes.attestation.allow)`,
    { details: { namespace: id.namespace, serviceAccount: id.serviceAccount } },
  );
}

/** The node record of one pod's agent (sidecar). Namespaces and clusters are DNS labels, so the name splits back unambiguously. */
export function podNodeName(prefix: string, cluster: string, namespace: string, pod: string): string {
  return `${prefix}.${cluster}.${namespace}.${pod}`;
}

/** The node record of a per-node agent (several pods on one Kubernetes node). */
export function kubeNodeName(prefix: string, cluster: string, node: string): string {
  return `${prefix}-node.${cluster}.${node}`;
}

/** Whether a node name belongs to pod attestation (join tokens may not be made for it; RenewNode refuses it). */
export function isAttestedNodeName(prefix: string, name: string): boolean {
  return name.startsWith(`${prefix}.`) || name.startsWith(`${prefix}-node.`);
}
