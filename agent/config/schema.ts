/**
 * The agent configuration schema (`mesh-agent run --config FILE`). Defaults
 * live here; unknown keys are rejected. controlPlane and envoy are parsed and
 * validated now and used by later parts of the agent.
 */
import { isIP } from 'node:net';
import * as z from 'zod';
import { durationMs } from '../../lib/duration.js';
import { validateTrustDomain } from '../../lib/spiffe-id.js';
import { hostPort, tracingSchema } from '../../lib/tracing.js';

export { HOST_PORT, type TracingConfig, tracingSchema } from '../../lib/tracing.js';

/**
 * The schemas, built anew by each call and dropped after the parse. The agent
 * parses its configuration at start and on reload only; zod's schema objects
 * kept for the life of the process held about 0.6 MB of the agent's heap
 * (with the workload and policy schemas, 1.4 MB), so none is kept at module
 * level.
 */
function build() {
  const port = z.number().int().min(1).max(65535);

  const trustDomain = z.string().superRefine((value, ctx) => {
    try {
      validateTrustDomain(value);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
    }
  });

  const consulSchema = z.strictObject({
    /** agent: the local Consul agent's service API; catalog: a Consul server's catalog API, checks run by mesh-agent. */
    mode: z.enum(['agent', 'catalog']).default('agent'),
    address: hostPort().default('127.0.0.1:8500'),
    token: z.string().default(''),
    /** A file holding the ACL token; read once at startup, wins over `token`. */
    tokenFile: z.string().optional(),
    datacenter: z.string().default(''),
    /** First retry delay after a failed Consul call; doubles per failure (with jitter) up to retryMax. */
    retryInitial: durationMs().default(250),
    retryMax: durationMs().default(5_000),
    /** How often registrations are compared with Consul (a restarted Consul gets them back). */
    syncInterval: durationMs().default(5_000),
    /** Longest blocking query of a catalog watch. */
    watchWait: durationMs().default(60_000),
    /** At most one new CatalogView per window: a change after a quiet window at once, the changes that follow at its end. */
    coalesceWindow: durationMs().default(25),
  });

  const cidr = z.string().regex(/^[0-9A-Fa-f.:]+(\/\d{1,3})?$/, 'must be an IPv4 or IPv6 address or CIDR');

  /**
   * Transparent proxy (traffic capture with iptables, agent/tproxy). Off by
   * default; on, it needs CAP_NET_ADMIN.
   */
  const transparentProxySchema = z.strictObject({
    enabled: z.boolean().default(false),
    /** Envoy's outbound capture listener (original destination), on 127.0.0.1 and ::1. */
    outboundPort: port.default(15001),
    /** Envoy's inbound capture listener (original destination), on 0.0.0.0 and ::. */
    inboundPort: port.default(15006),
    inbound: z
      .strictObject({
        enabled: z.boolean().default(true),
        /** "all": every workload's app port (minus workloads that opt out); or a list of ports. */
        ports: z.union([z.literal('all'), z.array(port).min(1)]).default('all'),
        excludePorts: z.array(port).default([]),
      })
      .prefault({}),
    outbound: z
      .strictObject({
        enabled: z.boolean().default(true),
        excludeCIDRs: z.array(cidr).default([]),
        /** Destination ports never captured; 22 (SSH) is always added. */
        excludePorts: z.array(port).default([]),
        excludeUIDs: z.array(z.number().int().min(0)).default([]),
        excludeGIDs: z.array(z.number().int().min(0)).default([]),
        /** Destinations the mesh doesn't know: pass through (allow) or refuse (registryOnly). Both are counted. */
        policy: z.enum(['allow', 'registryOnly']).default('allow'),
        /** The local workload whose SVID captured outbound calls present; default: the first by name that does not opt out. */
        caller: z.string().min(1).optional(),
      })
      .prefault({}),
    dns: z
      .strictObject({
        /** Capture DNS (udp/tcp 53) to the agent's split DNS proxy: the Consul domain to Consul, the rest to the host's resolvers. */
        capture: z.boolean().default(false),
        /** Where the agent's DNS proxy listens (127.0.0.1 only). */
        port: port.default(15053),
        /** Consul's DNS interface. */
        consulAddress: hostPort().default('127.0.0.1:8600'),
        domain: z.string().min(1).default('consul'),
      })
      .prefault({}),
    ipv6: z.enum(['auto', 'on', 'off']).default('auto'),
    backend: z.enum(['auto', 'nft', 'legacy']).default('auto'),
    /** Envoy dead or not ready: closed keeps capture (traffic fails), open lifts it within 2 s until Envoy is ready again. */
    failurePolicy: z.enum(['closed', 'open']).default('closed'),
    /** How often installed rules are compared with the expected ones (drift is repaired). */
    checkInterval: durationMs().default(10_000),
  });

  /**
   * JSON access logs of Envoy (docs/operations/tracing-and-access-logs.md).
   * `enabled` switches them on for every workload (inbound and outbound); a
   * workload file's `accessLog` overrides it. Workloads with server-side policy
   * are always logged inbound.
   */
  const accessLogSchema = z.strictObject({
    enabled: z.boolean().default(false),
    /** file: one JSON line per request in `path`; stdout: the agent logs each line (`msg: "access"`), so the journal has it. */
    output: z.enum(['file', 'stdout']).default('file'),
    /** The log file; default <dataDir>/envoy/access.log. Envoy reopens it on POST /reopen_logs (rotation). */
    path: z.string().min(1).optional(),
  });

  /**
   * Kubernetes mode (docs/operations/kubernetes-identity.md): the node identity
   * comes from projected service-account tokens (the control plane's
   * AttestKubernetes), not from `mesh-agent join`; renewals attest again with
   * the tokens the files hold then. `sidecar`: one pod, one token file. `per-node`:
   * one agent for several pods of one Kubernetes node, one token file per pod.
   * Needs controlPlane.address and trustDomain.
   */
  const kubernetesModeSchema = z
    .strictObject({
      mode: z.enum(['sidecar', 'per-node']).default('sidecar'),
      tokenFiles: z.array(z.string().min(1)).min(1).default(['/var/run/secrets/mesh/token']),
      /**
       * false (default): the control plane's catalog sync registers the pods in Consul from
       * their EndpointSlices (readiness from the kubelet), so the agent registers nothing and
       * a pod taken out of its Service stops getting traffic. true: the agent registers its
       * workloads itself (a cluster without the sync).
       */
      register: z.boolean().default(false),
    })
    .refine((k) => k.mode !== 'sidecar' || k.tokenFiles.length === 1, {
      message: "sidecar mode takes exactly one token file (the pod's); use mode per-node for several pods",
      path: ['tokenFiles'],
    });

  const agentConfigSchema = z.strictObject({
    nodeName: z.string().min(1).optional(),
    /**
     * Trust domain of SPIFFE IDs: spiffe://<trustDomain>/ns/<ns>/sa/<sa>. Default:
     * the one this host joined (its node SVID names it); set, it must equal that.
     */
    trustDomain: trustDomain.optional(),
    dataDir: z.string().min(1).default('/var/lib/mesh-agent'),
    workloadsDir: z.string().min(1).default('/etc/mesh-agent/workloads.d'),
    /** The address other hosts reach this host's workloads at; default: the host's first non-internal IPv4 address. */
    advertiseAddress: z.string().min(1).optional(),
    /**
     * The IPv6 address other hosts reach this host's workloads at (Consul tagged
     * address lan_ipv6, captured like the main one); default: the host's first
     * non-internal global IPv6 address of an interface that is up; "none": no
     * IPv6 address is advertised.
     */
    advertiseAddress6: z
      .string()
      .refine((v) => v === 'none' || (isIP(v) === 6 && !v.includes('%')), 'must be an IPv6 address (no zone) or "none"')
      .optional(),
    /** Longest wait for the host facts (OS, addresses; systeminformation, read once at start). */
    hostFactsTimeout: durationMs().default(5_000),
    /** Locality recorded in the catalog (meta mesh_zone). */
    zone: z.string().default(''),
    controlPlane: z
      .strictObject({
        /** Default: the address stored at join (mesh-agent join --controlplane). Set, the agent dials this one instead. */
        address: hostPort().optional(),
        caBundle: z.string().min(1).default('/etc/mesh-agent/ca-bundle.pem'),
      })
      .prefault({}),
    consul: consulSchema.prefault({}),
    envoy: z
      .strictObject({
        binary: z.string().min(1).default('/usr/bin/envoy'),
        /** Envoy's admin API, on 127.0.0.1 only. */
        adminPort: port.default(15000),
        /** How Envoy speaks xDS to the agent: state of the world or incremental. */
        api: z.enum(['sotw', 'delta']).default('delta'),
        /** Hot-restart shared-memory id; default derived from dataDir so two agents on one host differ. */
        baseId: z.number().int().min(0).max(4_000_000).optional(),
        concurrency: z.number().int().min(1).max(64).default(2),
        logLevel: z.enum(['trace', 'debug', 'info', 'warning', 'error', 'critical', 'off']).default('warning'),
        /** On stop and hot restart: how long established connections may finish. */
        drainTime: durationMs().default(5_000),
        restartBackoffInitial: durationMs().default(1_000),
        restartBackoffMax: durationMs().default(30_000),
        accessLog: z.boolean().default(false),
        /** Group id the ADS socket is given (Envoy's group when Envoy runs as its own user). */
        socketGid: z.number().int().min(0).optional(),
        /**
         * The user Envoy runs as: a name or a numeric uid. Default: `mesh-envoy`
         * when the agent runs as root, else the agent's own user. Envoy always
         * runs with no capabilities (CapEff 0); capture rules exempt it by owner.
         */
        user: z.string().min(1).optional(),
        /** Envoy's group: a name or a numeric gid. Default: the user's primary group. */
        group: z.string().min(1).optional(),
      })
      .prefault({}),
    /** Envoy, SVIDs and xDS; off: the agent only registers workloads and watches the catalog. */
    dataPlane: z.strictObject({ enabled: z.boolean().default(true) }).prefault({}),
    mesh: z
      .strictObject({
        /** A workload without `meshPort` gets port + inboundPortOffset as its mesh inbound port. */
        inboundPortOffset: z.number().int().min(1).max(64511).default(10000),
      })
      .prefault({}),
    status: z.strictObject({ listen: hostPort().default('127.0.0.1:15100') }).prefault({}),
    transparentProxy: transparentProxySchema.prefault({}),
    log: z
      .strictObject({
        level: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
        format: z.enum(['json', 'human']).default('json'),
      })
      .prefault({}),
    accessLog: accessLogSchema.prefault({}),
    /** Absent: no tracing, unless a MeshTelemetry policy sets it (this one wins over the policy). */
    tracing: tracingSchema().optional(),
    /** Kubernetes mode: the identity from service-account tokens instead of a join; absent: a VM or host that joins. */
    kubernetes: kubernetesModeSchema.optional(),
  });
  return { consulSchema, transparentProxySchema, accessLogSchema, kubernetesModeSchema, agentConfigSchema };
}
type Schemas = ReturnType<typeof build>;

/** A new schema of the transparentProxy section (built per parse: see build()). */
export const transparentProxySchema = (): Schemas['transparentProxySchema'] => build().transparentProxySchema;
/** A new schema of the agent configuration (built per parse: see build()). */
export const agentConfigSchema = (): Schemas['agentConfigSchema'] => build().agentConfigSchema;

export type TransparentProxyConfig = z.output<Schemas['transparentProxySchema']>;
export type AccessLogConfig = z.output<Schemas['accessLogSchema']>;
export type KubernetesModeConfig = z.output<Schemas['kubernetesModeSchema']>;

export type AgentConfigInput = z.input<Schemas['agentConfigSchema']>;
type Parsed = z.output<Schemas['agentConfigSchema']>;

/** The frozen, fully resolved agent configuration. */
export type AgentConfig = Readonly<
  Omit<Parsed, 'nodeName' | 'consul' | 'trustDomain'> & {
    nodeName: string;
    /** Resolved from the join (or the file); "" only where the caller did not require it. */
    trustDomain: string;
    consul: Readonly<Omit<Parsed['consul'], 'tokenFile'>>;
  }
>;
