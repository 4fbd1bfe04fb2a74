/**
 * Mesh policy resources: the documents `meshctl policy apply` takes and the
 * control plane stores and streams to agents. Shaped like Istio and Kuma
 * resources (apiVersion, kind, metadata.name, spec) so their users recognize
 * them. Validated with zod on the control plane (field paths in every error);
 * agents parse what they receive with the same schema.
 *
 * Kinds:
 * - ServiceIdentity: which SPIFFE IDs may serve a service (secure naming).
 * - TrafficRoute: HTTP matches, weighted subsets, timeouts, retries, faults, mirroring.
 * - TrafficPolicy: client-side connect timeout, circuit breakers, outlier detection,
 *   load balancer, locality.
 * - AuthorizationPolicy: server-side allow/deny by source SPIFFE ID (and HTTP attributes).
 * - PeerAuthentication: mTLS mode, strict or permissive.
 * - RateLimit: local inbound rate limit per workload, optionally per route.
 * - MeshTelemetry: mesh-wide tracing (no target: it concerns every node; one
 *   per mesh, a second is refused at apply; an agent whose agent.yaml sets
 *   `tracing` keeps its own).
 *
 * Targets (`target`) name a destination service (`service`, as in Consul) or one
 * workload identity (`spiffeId`); a spiffeId target wins over a service target.
 */
import * as z from 'zod';
import { durationMs } from '../duration.js';
import { tracingSchema } from '../tracing.js';

export const POLICY_API_VERSION = 'mesh.v1';

export const POLICY_KINDS = [
  'ServiceIdentity',
  'TrafficRoute',
  'TrafficPolicy',
  'AuthorizationPolicy',
  'PeerAuthentication',
  'RateLimit',
  'MeshTelemetry',
] as const;
export type PolicyKind = (typeof POLICY_KINDS)[number];

/**
 * The policy schemas, built anew by each call. An agent parses policy only when
 * the control plane sends a changed resource (agent/dataplane/policy-lifecycle.ts
 * builds them once for all the resources of one build), so the schemas are not
 * kept for the life of the process: zod's schema objects held about 0.9 MB of
 * the agent's heap (agent/config/schema.ts). The control plane keeps one set.
 */
export function policySchemas() {
  /** Resource names: DNS-label-like, so they fit in Envoy stat names and log fields. */
  const policyName = z
    .string()
    .regex(/^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/, 'must be lower-case letters, digits, "-" and "." (at most 63)');

  /** A Consul service name. */
  const serviceName = z.string().regex(/^[A-Za-z0-9]([A-Za-z0-9_-]{0,62})$/, 'must be a Consul service name (letters, digits, "-", "_")');

  const pathSegment = z.string().regex(/^[a-zA-Z0-9._-]+$/, 'must be a SPIFFE path segment (letters, digits, ".", "-", "_")');

  /** A SPIFFE ID, or a pattern where a whole path segment may be `*` (one segment). */
  const spiffeIdPattern = z
    .string()
    .regex(
      /^spiffe:\/\/[a-z0-9._-]+(\/([a-zA-Z0-9._-]+|\*))+$/,
      'must be a SPIFFE ID such as spiffe://example.org/ns/default/sa/api, where a whole path segment may be "*"',
    );

  const spiffeIdExact = z
    .string()
    .regex(/^spiffe:\/\/[a-z0-9._-]+(\/[a-zA-Z0-9._-]+)+$/, 'must be a SPIFFE ID such as spiffe://example.org/ns/default/sa/api');

  const percent = z.number().min(0).max(100);

  /** Exactly one of exact, prefix, regex (RE2 syntax, as Envoy uses). */
  const stringMatch = z
    .strictObject({ exact: z.string().optional(), prefix: z.string().optional(), regex: z.string().min(1).optional() })
    .refine((m) => [m.exact, m.prefix, m.regex].filter((v) => v !== undefined).length === 1, {
      message: 'must have exactly one of exact, prefix, regex',
    });

  const headerMatch = z
    .strictObject({
      name: z
        .string()
        .min(1)
        .regex(/^:?[a-z0-9-]+$/, 'must be a lower-case header name'),
      exact: z.string().optional(),
      prefix: z.string().optional(),
      regex: z.string().min(1).optional(),
      present: z.boolean().optional(),
    })
    .refine((m) => [m.exact, m.prefix, m.regex, m.present].filter((v) => v !== undefined).length === 1, {
      message: 'must have exactly one of exact, prefix, regex, present',
    });

  const httpMethod = z.enum(HTTP_METHODS);

  const target = z
    .strictObject({ service: serviceName.optional(), spiffeId: spiffeIdExact.optional() })
    .refine((t) => (t.service === undefined) !== (t.spiffeId === undefined), { message: 'must have exactly one of service, spiffeId' });

  // --- ServiceIdentity -------------------------------------------------------

  const serviceIdentitySpec = z.strictObject({
    service: serviceName,
    /** The namespace callers declare for this upstream (workload file upstreams[].namespace). */
    namespace: pathSegment.default('default'),
    /** Who may serve it; the catalog may narrow this set, never widen it. */
    allowedIdentities: z.array(spiffeIdPattern).min(1),
  });

  // --- TrafficRoute ----------------------------------------------------------

  const subsetSpec = z
    .strictObject({
      name: policyName,
      /** Instances carrying all these Consul tags. */
      tags: z.array(z.string().min(1)).default([]),
      /** Instances whose Consul service meta has all these values. */
      meta: z.record(z.string(), z.string()).default({}),
    })
    .refine((s) => s.tags.length > 0 || Object.keys(s.meta).length > 0, { message: 'must select by tags or meta' });

  const routeDestination = z.strictObject({
    /** A subset of the route's service; absent: all its instances. */
    subset: policyName.optional(),
    weight: z.number().int().min(0).max(10_000).default(1),
  });

  const httpRouteRule = z.strictObject({
    name: policyName,
    match: z
      .strictObject({
        path: stringMatch.optional(),
        method: httpMethod.optional(),
        headers: z.array(headerMatch).default([]),
      })
      .default({ headers: [] }),
    destinations: z.array(routeDestination).min(1),
    timeout: durationMs().optional(),
    retries: z
      .strictObject({
        attempts: z.number().int().min(0).max(10),
        perTryTimeout: durationMs().optional(),
        retryOn: z.array(z.enum(RETRY_ON)).min(1).default(['5xx', 'connect-failure', 'reset']),
      })
      .optional(),
    fault: z
      .strictObject({
        delay: z.strictObject({ percent, duration: durationMs() }).optional(),
        abort: z.strictObject({ percent, status: z.number().int().min(200).max(599) }).optional(),
      })
      .refine((f) => f.delay !== undefined || f.abort !== undefined, { message: 'must have delay or abort' })
      .optional(),
    mirror: z
      .strictObject({ subset: policyName.optional(), service: serviceName.optional(), percent: percent.default(100) })
      .refine((m) => (m.subset === undefined) !== (m.service === undefined), { message: 'must have exactly one of subset, service' })
      .optional(),
  });

  const trafficRouteSpec = z.strictObject({
    service: serviceName,
    subsets: z.array(subsetSpec).default([]),
    /** Tried in order, first match wins; a request no rule matches goes to all instances. */
    http: z.array(httpRouteRule).optional(),
    /** For TCP services: weighted subsets only. */
    tcp: z.strictObject({ destinations: z.array(routeDestination).min(1) }).optional(),
  });

  // --- TrafficPolicy ---------------------------------------------------------

  const trafficPolicySpec = z.strictObject({
    service: serviceName,
    connectTimeout: durationMs().optional(),
    circuitBreaker: z
      .strictObject({
        maxConnections: z.number().int().min(1).optional(),
        maxPendingRequests: z.number().int().min(1).optional(),
        maxRequests: z.number().int().min(1).optional(),
        maxRetries: z.number().int().min(0).optional(),
      })
      .optional(),
    outlierDetection: z
      .strictObject({
        consecutive5xx: z.number().int().min(1).default(5),
        interval: durationMs().default(10_000),
        baseEjectionTime: durationMs().default(30_000),
        maxEjectionPercent: percent.default(10),
      })
      .optional(),
    loadBalancer: z
      .strictObject({
        type: z.enum(['roundRobin', 'leastRequest', 'random', 'ringHash']),
        hash: z
          .strictObject({
            header: z.string().min(1).optional(),
            cookie: z.strictObject({ name: z.string().min(1), ttl: durationMs().optional() }).optional(),
          })
          .refine((h) => (h.header === undefined) !== (h.cookie === undefined), { message: 'must have exactly one of header, cookie' })
          .optional(),
      })
      .refine((lb) => (lb.type === 'ringHash') === (lb.hash !== undefined), { message: 'hash is required with ringHash, and only with it' })
      .optional(),
    locality: z.strictObject({ preferLocalZone: z.boolean().default(true) }).optional(),
  });

  // --- AuthorizationPolicy ---------------------------------------------------

  const authorizationRule = z
    .strictObject({
      name: policyName,
      action: z.enum(['allow', 'deny']),
      /** Source identities: a rule matches a peer that any entry matches. Absent: any peer. */
      from: z
        .strictObject({
          ids: z.array(spiffeIdExact).default([]),
          idPrefixes: z.array(z.string().regex(/^spiffe:\/\/[a-z0-9._-]+\//, 'must start with spiffe://<trust-domain>/')).default([]),
          namespaces: z.array(pathSegment).default([]),
        })
        .optional(),
      /** HTTP only: all listed kinds must match (any entry within a kind). */
      http: z
        .strictObject({
          paths: z.array(stringMatch).default([]),
          methods: z.array(httpMethod).default([]),
          headers: z.array(headerMatch).default([]),
        })
        .optional(),
    })
    .refine((r) => r.from !== undefined || r.http !== undefined, { message: 'must have from or http' });

  const authorizationPolicySpec = z.strictObject({
    target,
    /** What happens to a request no rule matches. Deny wins over allow when both match. */
    defaultAction: z.enum(['allow', 'deny']),
    rules: z.array(authorizationRule).default([]),
  });

  // --- PeerAuthentication ----------------------------------------------------

  const peerAuthenticationSpec = z.strictObject({
    target,
    /** strict (the default with no resource): mTLS only; permissive: plaintext also accepted on the mesh port. */
    mode: z.enum(['strict', 'permissive']),
  });

  // --- RateLimit -------------------------------------------------------------

  const bucket = { requestsPerSecond: z.number().int().min(1), burst: z.number().int().min(0).default(0) };

  const rateLimitSpec = z.strictObject({
    target,
    ...bucket,
    /** Per-route buckets (HTTP only), matched by path before the workload-wide bucket. */
    routes: z.array(z.strictObject({ name: policyName, path: stringMatch, ...bucket })).default([]),
  });

  // --- MeshTelemetry ---------------------------------------------------------

  /** Mesh-wide telemetry: the tracing every agent without its own agent.yaml `tracing` uses. */
  const meshTelemetrySpec = z.strictObject({
    /** Same keys and rules as agent.yaml `tracing` (lib/tracing.ts). */
    tracing: tracingSchema(),
  });

  // --- Envelope --------------------------------------------------------------

  const SPEC_SCHEMAS = {
    ServiceIdentity: serviceIdentitySpec,
    TrafficRoute: trafficRouteSpec,
    TrafficPolicy: trafficPolicySpec,
    AuthorizationPolicy: authorizationPolicySpec,
    PeerAuthentication: peerAuthenticationSpec,
    RateLimit: rateLimitSpec,
    MeshTelemetry: meshTelemetrySpec,
  } as const;

  /** The envelope before the spec is checked against its kind's schema. */
  const policyEnvelope = z.strictObject({
    apiVersion: z.literal(POLICY_API_VERSION),
    kind: z.enum(POLICY_KINDS),
    metadata: z.strictObject({ name: policyName }),
    spec: z.unknown(),
  });
  return {
    policyName,
    serviceName,
    spiffeIdPattern,
    spiffeIdExact,
    stringMatch,
    headerMatch,
    target,
    serviceIdentitySpec,
    subsetSpec,
    routeDestination,
    httpRouteRule,
    trafficRouteSpec,
    trafficPolicySpec,
    authorizationRule,
    authorizationPolicySpec,
    peerAuthenticationSpec,
    rateLimitSpec,
    meshTelemetrySpec,
    SPEC_SCHEMAS,
    policyEnvelope,
  };
}
export type PolicySchemas = ReturnType<typeof policySchemas>;

export type StringMatch = z.output<PolicySchemas['stringMatch']>;
export type HeaderMatch = z.output<PolicySchemas['headerMatch']>;
export type PolicyTarget = z.output<PolicySchemas['target']>;
export type ServiceIdentitySpec = z.output<PolicySchemas['serviceIdentitySpec']>;
export type SubsetSpec = z.output<PolicySchemas['subsetSpec']>;
export type RouteDestination = z.output<PolicySchemas['routeDestination']>;
export type HttpRouteRule = z.output<PolicySchemas['httpRouteRule']>;
export type TrafficRouteSpec = z.output<PolicySchemas['trafficRouteSpec']>;
export type TrafficPolicySpec = z.output<PolicySchemas['trafficPolicySpec']>;
export type AuthorizationRule = z.output<PolicySchemas['authorizationRule']>;
export type AuthorizationPolicySpec = z.output<PolicySchemas['authorizationPolicySpec']>;
export type PeerAuthenticationSpec = z.output<PolicySchemas['peerAuthenticationSpec']>;
export type RateLimitSpec = z.output<PolicySchemas['rateLimitSpec']>;
export type MeshTelemetrySpec = z.output<PolicySchemas['meshTelemetrySpec']>;

const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'CONNECT', 'TRACE'] as const;

export const RETRY_ON = [
  '5xx',
  'gateway-error',
  'reset',
  'connect-failure',
  'retriable-4xx',
  'refused-stream',
  'retriable-status-codes',
] as const;

/** Kinds with no target: every subscriber gets them (the policy filter's mesh-wide bucket). */
export const MESH_WIDE_KINDS: ReadonlySet<string> = new Set<PolicyKind>(['MeshTelemetry']);

export interface SpecByKind {
  ServiceIdentity: ServiceIdentitySpec;
  TrafficRoute: TrafficRouteSpec;
  TrafficPolicy: TrafficPolicySpec;
  AuthorizationPolicy: AuthorizationPolicySpec;
  PeerAuthentication: PeerAuthenticationSpec;
  RateLimit: RateLimitSpec;
  MeshTelemetry: MeshTelemetrySpec;
}

/** A validated policy document, spec parsed (durations in ms, defaults filled). */
export type PolicyDocument = {
  [K in PolicyKind]: {
    readonly apiVersion: typeof POLICY_API_VERSION;
    readonly kind: K;
    readonly name: string;
    readonly spec: SpecByKind[K];
  };
}[PolicyKind];

/**
 * A resource as stored and streamed: `source` is the document as the user
 * wrote it (JSON of the YAML, so durations stay text), `version` counts this
 * resource's changes, `revision` is the mesh-wide revision of its last change.
 */
export interface StoredPolicy {
  readonly kind: PolicyKind;
  readonly name: string;
  readonly version: number;
  readonly revision: number;
  readonly source: unknown;
}

/** What an agent holds: the mesh revision and the resources that concern its node. */
export interface PolicySet {
  readonly revision: number;
  readonly resources: readonly StoredPolicy[];
}
