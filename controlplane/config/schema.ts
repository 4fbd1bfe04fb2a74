/** mesh-controlplane configuration: a YAML/JSON file (--config) with flags overriding it. */
import * as z from 'zod';
import { durationMs } from '../../lib/duration.js';
import { validateTrustDomain } from '../../lib/spiffe-id.js';
import { kubeAttestationSchema } from '../kube/attestation-config.js';
import { kubeSyncSchema } from '../kube/sync-config.js';

const hostPort = z.string().regex(/^(\[[0-9a-fA-F:]+\]|[^:\s]+):\d{1,5}$/, 'must be HOST:PORT');

export const controlplaneSchema = z.strictObject({
  dataDir: z.string().min(1),
  listen: hostPort.default('0.0.0.0:8443'),
  trustDomain: z.string().refine((td) => {
    try {
      validateTrustDomain(td);
      return true;
    } catch {
      return false;
    }
  }, 'must be a trust domain name: lower-case letters, digits, ".", "-", "_"'),
  svidTtl: durationMs().default(24 * 3600_000),
  nodeSvidTtl: durationMs().default(24 * 3600_000),
  maxTokenTtl: durationMs().default(24 * 3600_000),
  maxCsrBytes: z.number().int().min(256).max(65536).default(4096),
  /** Threads that check CSRs and sign leaves; 0 signs on the main thread. Default: one per core. */
  signingWorkers: z.number().int().min(0).max(64).optional(),
  rateLimit: z
    .strictObject({ perSecond: z.number().positive().default(200), burst: z.number().int().positive().default(400) })
    .prefault({}),
  /** Proxy sync status (meshctl node list/status): a node with no report for staleAfter is STALE; agents report every staleAfter/3. */
  nodeStatus: z.strictObject({ staleAfter: durationMs().default(30_000) }).prefault({}),
  log: z
    .strictObject({ level: z.enum(['debug', 'info', 'warn', 'error']).default('info'), format: z.enum(['json', 'human']).default('json') })
    .prefault({}),
  /** GET /metrics (Prometheus text) on this HOST:PORT; absent: no metrics listener. */
  metrics: z.strictObject({ listen: hostPort.optional() }).prefault({}),
  /**
   * Kubernetes (controlplane/kube/): absent, the control plane never talks to a
   * cluster. `kubeconfig` is the file to reach the API server with (absent: the
   * in-cluster service account). `sync` is the catalog sync both ways,
   * `attestation` the SVIDs for pods from service-account tokens; each is off
   * unless its section is present.
   */
  kubernetes: z
    .strictObject({
      kubeconfig: z.string().min(1).optional(),
      /** A name for the cluster: the synthetic Consul node of its services, labels, audit. */
      cluster: z
        .string()
        .regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, 'must be a DNS label (lower-case letters, digits, "-")')
        .default('kubernetes'),
      sync: kubeSyncSchema.optional(),
      attestation: kubeAttestationSchema.optional(),
    })
    .optional(),
});

export type ControlplaneConfig = z.output<typeof controlplaneSchema>;
