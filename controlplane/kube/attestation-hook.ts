/**
 * The control plane's one hook for pod attestation: with
 * `kubernetes.attestation` in controlplane.yaml, it connects to the API server
 * (kube-client.ts; nothing is dialled until the first attestation), reserves
 * the attested node names and makes the KubeAttestor the Identity API serves.
 */
import type { Clock } from '../../lib/clock.js';
import type { Logger } from '../../lib/logger.js';
import type { ControlplaneConfig } from '../config/schema.js';
import type { IdentityConfig, IdentityService } from '../identity-service.js';
import { KubeAttestor } from './kube-attestor.js';
import { connectKube } from './kube-client.js';
import { isAttestedNodeName } from './pod-attestation.js';
import { kubePodReviewer, type PodReviewer } from './pod-reviewer.js';

export interface KubeAttestationHook {
  identityConfig: Pick<IdentityConfig, 'attestedNodeName'>;
  attestor(identity: IdentityService): KubeAttestor;
}

export async function kubeAttestationHook(
  config: ControlplaneConfig,
  clock: Clock,
  logger: Logger,
  reviewer?: PodReviewer,
): Promise<KubeAttestationHook | undefined> {
  const kube = config.kubernetes;
  const attestation = kube?.attestation;
  if (kube === undefined || attestation === undefined) return undefined;
  const podReviewer = reviewer ?? kubePodReviewer(await connectKube(kube.kubeconfig), { clock, timeoutMs: attestation.timeout });
  const log = logger.child({ component: 'kube-attestation' });
  return {
    identityConfig: { attestedNodeName: (name) => isAttestedNodeName(attestation.nodePrefix, name) },
    attestor(identity) {
      const attestor = new KubeAttestor({
        config: attestation,
        cluster: kube.cluster,
        trustDomain: config.trustDomain,
        reviewer: podReviewer,
        identity,
        clock,
        logger: log,
      });
      log.info('kubernetes pod attestation on', {
        cluster: kube.cluster,
        audience: attestation.audience ?? config.trustDomain,
        allow: attestation.allow.map((r) => `${r.namespace}/${r.serviceAccount}`),
      });
      return attestor;
    },
  };
}
