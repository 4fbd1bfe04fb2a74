/**
 * The workload file schema: one file per workload in workloadsDir, YAML or
 * JSON. Unknown keys are rejected; namespace and serviceAccount must be valid
 * SPIFFE path segments because they form the workload's SPIFFE ID.
 */
import * as z from 'zod';
import { META_PREFIX } from '../../lib/consul-meta.js';
import { durationText } from '../../lib/duration.js';
import { validateSegment } from '../../lib/spiffe-id.js';
import { MESH_PROTOCOLS } from '../model/proxy-model.js';

const CHECK_KINDS = ['http', 'tcp', 'exec', 'ttl', 'grpc'] as const;
export type CheckKind = (typeof CHECK_KINDS)[number];

// Consul meta keys: letters, digits, "_" and "-"; the mesh_ prefix is the agent's own.
const META_KEY = /^[A-Za-z0-9_-]{1,128}$/;

/**
 * A new workload file schema, built for a parse and dropped after it: workload
 * files are read at start and when one changes, and schemas kept for the life
 * of the process only hold heap (agent/config/schema.ts).
 */
export function workloadSchema() {
  const port = z.number().int().min(1).max(65535);

  const segment = (what: string) =>
    z.string().superRefine((value, ctx) => {
      try {
        validateSegment(value, what);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
      }
    });

  const checkSchema = z
    .strictObject({
      http: z.url({ protocol: /^https?$/ }).optional(),
      tcp: z
        .string()
        .regex(/^[^\s]+:\d{1,5}$/, 'must be host:port')
        .optional(),
      exec: z.array(z.string().min(1)).min(1).optional(),
      ttl: durationText().optional(),
      grpc: z
        .string()
        .regex(/^[^\s]+:\d{1,5}(\/\S*)?$/, 'must be host:port or host:port/service')
        .optional(),
      interval: durationText().default('10s'),
      timeout: durationText().default('5s'),
    })
    .refine((c) => CHECK_KINDS.filter((k) => c[k] !== undefined).length === 1, {
      message: `must have exactly one of ${CHECK_KINDS.join(', ')}`,
    });

  const meta = z.record(z.string(), z.string().max(512)).superRefine((value, ctx) => {
    for (const key of Object.keys(value)) {
      if (!META_KEY.test(key))
        ctx.addIssue({ code: 'custom', path: [key], message: 'meta keys are letters, digits, "_" and "-" (at most 128)' });
      else if (key.startsWith(META_PREFIX))
        ctx.addIssue({ code: 'custom', path: [key], message: `meta keys starting with "${META_PREFIX}" are set by the agent` });
    }
  });

  return z.strictObject({
    name: z.string().regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, 'must be a DNS label: lower-case letters, digits and "-"'),
    port,
    /** Envoy's inbound port for this workload; default: port + mesh.inboundPortOffset. */
    meshPort: port.optional(),
    protocol: z.enum(MESH_PROTOCOLS).default('tcp'),
    namespace: segment('namespace').default('default'),
    serviceAccount: segment('service account').optional(),
    tags: z.array(z.string().min(1)).default([]),
    meta: meta.default({}),
    weight: z.number().int().min(1).max(65535).default(1),
    check: checkSchema.optional(),
    /**
     * Transparent proxy for this workload (when the agent's transparentProxy is
     * on): `inbound: false` leaves its port uncaptured; with `runAsUser` (the uid
     * the app runs as), `outbound: false` exempts its own connections.
     */
    transparentProxy: z
      .strictObject({
        inbound: z.boolean().default(true),
        outbound: z.boolean().default(true),
        runAsUser: z.number().int().min(0).optional(),
      })
      .refine((t) => t.outbound || t.runAsUser !== undefined, {
        message: 'outbound: false needs runAsUser (the uid the app runs as), since capture tells processes apart by owner',
        path: ['outbound'],
      })
      .prefault({}),
    /** JSON access log of this workload's inbound and outbound traffic; absent: the agent's accessLog.enabled. */
    accessLog: z.boolean().optional(),
    upstreams: z
      .array(
        z.strictObject({
          service: z.string().min(1),
          localPort: port,
          /** Namespace of the upstream's servers: with no ServiceIdentity policy, only spiffe://<td>/ns/<namespace>/sa/<service> may serve it. */
          namespace: segment('namespace').optional(),
        }),
      )
      .default([]),
  });
}

export type WorkloadFile = z.output<ReturnType<typeof workloadSchema>>;
export { CHECK_KINDS };
