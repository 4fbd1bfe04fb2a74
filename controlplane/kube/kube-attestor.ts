/**
 * Pod attestation (the shell around pod-attestation.ts): each projected
 * service-account token goes to TokenReview with the expected audience, the
 * bound pod must exist with the token's pod uid, its namespace and service
 * account must be allowed; then the node record of the pod (one token) or of
 * the Kubernetes node all the pods run on (several tokens) is made to hold
 * exactly their SPIFFE IDs spiffe://<td>/ns/<ns>/sa/<sa>, and a node SVID is
 * issued for it. Every refusal is audited with its own code. Tokens are never
 * logged, stored or put in an error.
 */
import type { Clock } from '../../lib/clock.js';
import { MeshError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { workloadId } from '../../lib/spiffe-id.js';
import type { IdentityService, SvidResult } from '../identity-service.js';
import type { KubeAttestationConfig } from './attestation-config.js';
import {
  identityOf,
  isAttestedNodeName,
  kubeNodeName,
  type PodIdentity,
  podNodeName,
  refusalOf,
  requireAllowed,
  unverifiedClaims,
} from './pod-attestation.js';
import type { PodReviewer } from './pod-reviewer.js';

export const ATTEST_ACTION = 'kube.attest';
/** How many tokens one request may carry (a per-node agent: one per pod of its node). */
export const MAX_TOKENS = 64;
const MAX_TOKEN_BYTES = 16 * 1024;
const MIN_NODE_TTL_MS = 60_000;

export interface KubeAttestorDeps {
  config: KubeAttestationConfig;
  cluster: string;
  trustDomain: string;
  reviewer: PodReviewer;
  identity: IdentityService;
  clock: Clock;
  logger: Logger;
}

interface Attested extends PodIdentity {
  readonly nodeName: string;
  /** Milliseconds since the epoch (from the accepted token). */
  readonly expiresAt?: number;
}

export class KubeAttestor {
  readonly audience: string;

  constructor(private readonly d: KubeAttestorDeps) {
    this.audience = d.config.audience ?? d.trustDomain;
  }

  /** Node names this attestor owns (join tokens cannot be made for them). */
  owns(name: string): boolean {
    return isAttestedNodeName(this.d.config.nodePrefix, name);
  }

  async attest(input: { tokens: readonly string[]; csr: Uint8Array; peer: string }): Promise<SvidResult> {
    const { identity, clock } = this.d;
    identity.takeRate(`peer:${input.peer}`);
    let actor = `peer:${input.peer}`;
    let spiffeId: string | null = null;
    try {
      if (input.tokens.length === 0 || input.tokens.length > MAX_TOKENS) {
        throw new MeshError('MESH_E_USAGE', `send between 1 and ${MAX_TOKENS} service-account tokens (got ${input.tokens.length})`);
      }
      const pods: Attested[] = [];
      for (const token of input.tokens) {
        const pod = await this.attestOne(token);
        actor = `k8s:${this.d.cluster}/${pod.namespace}/${pod.pod}`;
        spiffeId = workloadId(this.d.trustDomain, pod.namespace, pod.serviceAccount).toString();
        pods.push(pod);
      }
      const first = pods[0] as Attested;
      const node =
        pods.length === 1 ? podNodeName(this.d.config.nodePrefix, this.d.cluster, first.namespace, first.pod) : this.sharedNode(pods);
      const allow = [...new Set(pods.map((p) => workloadId(this.d.trustDomain, p.namespace, p.serviceAccount).toString()))].sort();
      const expiries = pods.flatMap((p) => (p.expiresAt === undefined ? [] : [p.expiresAt]));
      // Never beyond a token's expiry; at least a minute, should the API server's clock run ahead of ours.
      const ttlMs = Math.max(MIN_NODE_TTL_MS, Math.min(this.d.config.nodeSvidTtl, ...expiries.map((e) => e - clock.now())));
      const detail = `pods ${pods.map((p) => `${p.namespace}/${p.pod} (${p.podUid})`).join(' ')} allow ${allow.join(' ')}`;
      return await identity.admitAttested({ node, allow, csr: input.csr, ttlMs, actor, action: ATTEST_ACTION, detail });
    } catch (err) {
      throw await identity.refused(err, { actor, action: ATTEST_ACTION, spiffe_id: spiffeId });
    }
  }

  private sharedNode(pods: readonly Attested[]): string {
    const nodes = new Set(pods.map((p) => p.nodeName));
    const [only] = nodes;
    if (nodes.size !== 1 || only === undefined || only === '') {
      throw new MeshError(
        'MESH_E_NOT_AUTHORIZED',
        `a per-node agent's pods must all run on one Kubernetes node; these run on ${[...nodes].map((n) => n || '(unscheduled)').join(', ')}`,
      );
    }
    return kubeNodeName(this.d.config.nodePrefix, this.d.cluster, only);
  }

  private async attestOne(token: string): Promise<Attested> {
    const { reviewer, clock } = this.d;
    if (token.length === 0 || token.length > MAX_TOKEN_BYTES) {
      throw new MeshError('MESH_E_KUBE_TOKEN_INVALID', `a service-account token must be 1 to ${MAX_TOKEN_BYTES} bytes`);
    }
    const claims = unverifiedClaims(token);
    const outcome = await reviewer.review(token, this.audience);
    if (!outcome.authenticated) {
      const refusal = refusalOf(claims, this.audience, clock.now(), outcome.error);
      if (refusal !== 'pod-check') throw refusal;
      const named = claims?.pod as { name: string; uid: string };
      const current = claims?.namespace === undefined ? undefined : await reviewer.pod(claims.namespace, named.name);
      if (current === undefined || current.uid !== named.uid) throw this.podGone(claims?.namespace ?? '?', named.name, named.uid);
      throw new MeshError('MESH_E_KUBE_TOKEN_INVALID', `TokenReview refused the token: ${outcome.error.slice(0, 300)}`);
    }
    const id = identityOf(outcome, this.audience);
    requireAllowed(this.d.config.allow, id);
    const pod = await reviewer.pod(id.namespace, id.pod);
    if (pod === undefined || pod.uid !== id.podUid) throw this.podGone(id.namespace, id.pod, id.podUid);
    return { ...id, nodeName: pod.nodeName, ...(claims?.exp === undefined ? {} : { expiresAt: claims.exp * 1000 }) };
  }

  /**
   * One answer whether the pod is missing or replaced by another of the same name: the
   * caller may hold no valid token (the refused-token path looks the pod up from the
   * token's unverified claims), so the answer never says which, nor the current pod's uid.
   */
  private podGone(namespace: string, pod: string, uid: string): MeshError {
    return new MeshError(
      'MESH_E_KUBE_POD_GONE',
      `pod ${namespace}/${pod} (uid ${uid}) the token is bound to does not exist any more; a pod of that name now, if any, is another one`,
      { details: { namespace, pod, uid } },
    );
  }
}
