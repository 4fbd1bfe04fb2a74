/** `kubernetes.attestation` of controlplane.yaml: SVIDs for pods from service-account tokens (filled in by the attestation's branch). */
import { z } from 'zod';

export const kubeAttestationSchema = z.strictObject({});

export type KubeAttestationConfig = z.output<typeof kubeAttestationSchema>;
