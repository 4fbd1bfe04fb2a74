/**
 * `kubernetes.attestation` of controlplane.yaml: SVIDs for pods from
 * projected service-account tokens (docs/operations/kubernetes-identity.md).
 *
 * - `audience`: what the tokens must be issued for (TokenReview
 *   spec.audiences); default the trust domain.
 * - `allow`: which pods may get SVIDs; a rule matches a namespace and a
 *   service account, each a glob where `*` matches any run of characters.
 *   A pod matched by no rule is refused (MESH_E_KUBE_NOT_ALLOWED).
 * - `nodePrefix`: node records of attested pods are named
 *   `<nodePrefix>.<cluster>.<namespace>.<pod>` (sidecar) or
 *   `<nodePrefix>-node.<cluster>.<kubernetes node>` (per-node agent); join
 *   tokens cannot be made for names under these prefixes.
 * - `nodeSvidTtl`: the node SVID of an attested pod lives at most this long
 *   (and never beyond the token's own expiry); renewal re-attests.
 * - `timeout`: longest wait for one Kubernetes API call.
 */
import * as z from 'zod';
import { durationMs } from '../../lib/duration.js';

const glob = z
  .string()
  .regex(/^[a-z0-9*]([a-z0-9.*-]*[a-z0-9*])?$/, 'must be a namespace or service-account name, where * matches any characters');

export const kubeAllowRuleSchema = z.strictObject({
  namespace: glob,
  serviceAccount: glob.default('*'),
});

export const kubeAttestationSchema = z.strictObject({
  audience: z.string().min(1).optional(),
  allow: z.array(kubeAllowRuleSchema).min(1, 'name at least one namespace (and service account) that may get SVIDs'),
  nodePrefix: z
    .string()
    .regex(/^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/, 'must be a DNS label (lower-case letters, digits, "-")')
    .default('k8s'),
  nodeSvidTtl: durationMs().default(3600_000),
  timeout: durationMs().default(5_000),
});

export type KubeAttestationConfig = z.output<typeof kubeAttestationSchema>;
export type KubeAllowRule = z.output<typeof kubeAllowRuleSchema>;
