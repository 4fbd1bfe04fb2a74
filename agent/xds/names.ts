/**
 * Resource names are an API: they appear in Envoy stats (`cluster.<name>.*`,
 * `listener.<address>.*` stat prefixes), admin output and dashboards. Never
 * rename one without a migration note.
 *
 * | resource                        | name                                       | example                          |
 * |---------------------------------|--------------------------------------------|----------------------------------|
 * | inbound listener                | `inbound:<workload>`                       | `inbound:web`                    |
 * | inbound route config (inline)   | `inbound:<workload>`                       | `inbound:web`                    |
 * | local app cluster               | `inbound:<workload>:app`                   | `inbound:web:app`                |
 * | outbound listener               | `outbound:<service>:<localPort>`           | `outbound:api:9001`              |
 * | outbound cluster, per caller    | `outbound:<service>@<caller>`              | `outbound:api@web`               |
 * | subset cluster, per caller      | `outbound:<service>:<subset>@<caller>`     | `outbound:api:v2@web`            |
 * | ClusterLoadAssignment (EDS)     | `outbound:<service>` / `outbound:<service>:<subset>` | `outbound:api:v2`      |
 * | outbound route config (RDS)     | `outbound:<service>@<caller>`              | `outbound:api@web`               |
 * | HTTP route (inside the config)  | the TrafficRoute rule name; `default` last | `canary`, `default`              |
 * | SDS identity secret             | the workload's SPIFFE ID                   | `spiffe://example.org/ns/default/sa/web` |
 * | SDS trust bundle                | `ROOTCA`                                   | `ROOTCA`                         |
 * | RBAC policy of a rule          | `<policy>.<rule>`                 | `api-authz.only-web`            |
 * | RBAC stat prefix (deny / allow)| `authz_deny_` / `authz_allow_`    | `http.inbound_api.rbac.authz_deny_.denied` |
 * | RBAC per-rule stat             | `<prefix>.policy.<policy>.<rule>.` | `http.inbound_api.rbac.authz_deny_.policy.api-authz.no-admin.denied` |
 * | network RBAC stat prefix       | `authz_<workload>_<action>[_<rule>]` | `authz_cache_deny_block_web.rbac.denied` |
 * | rate limit stat prefix         | `ratelimit_<workload>[_<route>]`  | `ratelimit_api_slow.http_local_rate_limit.rate_limited` |
 * | inbound route (rate limit)     | `ratelimit:<route>`               | `ratelimit:slow`                |
 * | inbound plaintext filter chain | `inbound:<workload>:plaintext`    | `inbound:api:plaintext`         |
 * | inbound mTLS filter chain      | `inbound:<workload>:mtls`         | `inbound:api:mtls`              |
 * | outbound capture listener      | `capture:outbound`                | `capture:outbound`              |
 * | its chain per destination      | `capture:outbound:<service>:<port>` | `capture:outbound:api:8080`   |
 * | its loop guard chain           | `capture:outbound:loop`           | `capture:outbound:loop`         |
 * | inbound capture listener       | `capture:inbound`                 | `capture:inbound`               |
 * | its chain per workload         | `capture:inbound:<workload>[:mtls|:plaintext]` | `capture:inbound:api:mtls` |
 * | its loop guard chain           | `capture:inbound:loop`            | `capture:inbound:loop`          |
 * | unknown destinations, allow    | cluster and chain `capture:passthrough` | `tcp.capture_passthrough.downstream_cx_total` |
 * | unknown destinations, refused  | cluster and chain `capture:blackhole`   | `tcp.capture_blackhole.downstream_cx_total`   |
 *
 * Capture chains' stat prefixes (tcp_proxy `tcp.<prefix>.*`, HCM
 * `http.<prefix>.*`) are their chain names through statPrefix, so captured
 * traffic is counted apart from the explicit listeners'
 * (`http.capture_inbound_api.*` next to `http.inbound_api.*`).
 *
 * `<caller>` is the local workload making the calls: each caller of a service
 * has its own clusters (its own SVID as client certificate, so the server sees
 * the caller's own identity) and its own route config. Subset clusters exist
 * for every subset of the service's TrafficRoute. ClusterLoadAssignments do
 * not depend on the caller and are shared (an EDS cluster names one with
 * `eds_cluster_config.service_name`).
 *
 * Migration (issue 11): the outbound cluster and route config were
 * `outbound:<service>` (one caller per service). They are now
 * `outbound:<service>@<caller>`; stats move from `cluster.outbound:api.*` to
 * `cluster.outbound:api@web.*`. The ClusterLoadAssignment keeps the name
 * `outbound:<service>`.
 *
 * Route configs and clusters are keyed by service, not port, so a future
 * transparent-proxy virtual listener can reference the same ones. `ROOTCA`
 * follows Istio's SDS convention. Stat prefixes are the names with every
 * character outside [A-Za-z0-9_] replaced by `_`.
 */

export const TRUST_BUNDLE_SECRET_NAME = 'ROOTCA';

export function inboundListenerName(workload: string): string {
  return `inbound:${workload}`;
}

export function inboundRouteName(workload: string): string {
  return `inbound:${workload}`;
}

export function localAppClusterName(workload: string): string {
  return `inbound:${workload}:app`;
}

export function outboundListenerName(service: string, localPort: number): string {
  return `outbound:${service}:${localPort}`;
}

/** The cluster of all instances of `service`, for the local workload `caller`. */
export function outboundClusterName(service: string, caller: string): string {
  return `outbound:${service}@${caller}`;
}

/** The cluster of one TrafficRoute subset of `service`, for `caller`. */
export function subsetClusterName(service: string, subset: string, caller: string): string {
  return `outbound:${service}:${subset}@${caller}`;
}

/** The ClusterLoadAssignment of a service (or one of its subsets); shared by every caller. */
export function outboundEndpointsName(service: string, subset?: string): string {
  return subset === undefined ? `outbound:${service}` : `outbound:${service}:${subset}`;
}

export function outboundRouteName(service: string, caller: string): string {
  return `outbound:${service}@${caller}`;
}

/** The name of the final catch-all HTTP route (to all instances) in an outbound route config. */
export const DEFAULT_ROUTE_NAME = 'default';

/** The SDS secret holding a workload's certificate chain and key. */
export function identitySecretName(spiffeId: string): string {
  return spiffeId;
}

/** A stat prefix derived from a resource name. */
export function statPrefix(name: string): string {
  return name.replace(/[^A-Za-z0-9_]/g, '_');
}

/**
 * The RBAC policy name of an authorization rule: it is what Envoy reports in
 * `rbac_access_denied_matched_policy[<name>]` (response code details,
 * connection termination details, access log) and in per-rule stats.
 */
export function rbacPolicyName(policy: string, rule: string): string {
  return `${policy}.${rule}`;
}

/** rules_stat_prefix of the HTTP RBAC filters (inside the HCM's `http.<stat_prefix>.rbac.`). */
export function httpRbacStatPrefix(action: 'deny' | 'allow'): string {
  return `authz_${action}_`;
}

/** stat_prefix of a network RBAC filter: one per deny rule, one for the allow set. */
export function networkRbacStatPrefix(workload: string, action: 'deny' | 'allow', rule?: string): string {
  return statPrefix(`authz_${workload}_${action}${rule === undefined ? '' : `_${rule}`}`);
}

/** stat_prefix of the local rate limit (workload-wide, or one route's bucket). */
export function rateLimitStatPrefix(workload: string, route?: string): string {
  return statPrefix(`ratelimit_${workload}${route === undefined ? '' : `_${route}`}`);
}

/** Name of the inbound route carrying a rate-limit route's own bucket. */
export function rateLimitRouteName(route: string): string {
  return `ratelimit:${route}`;
}

/** Names of the inbound filter chains in permissive mode. */
export function inboundChainName(workload: string, transport: 'mtls' | 'plaintext'): string {
  return `inbound:${workload}:${transport}`;
}

/** The outbound capture listener (transparent proxy, original destination) on 127.0.0.1 (and ::1). */
export const CAPTURE_OUTBOUND_LISTENER = 'capture:outbound';
/** The inbound capture listener (transparent proxy, original destination) on 0.0.0.0 (and ::). */
export const CAPTURE_INBOUND_LISTENER = 'capture:inbound';
/** ORIGINAL_DST cluster and default chain for destinations the mesh doesn't know (policy allow). */
export const PASSTHROUGH_CLUSTER = 'capture:passthrough';
/** Cluster with no endpoints (the connection is closed) and default chain for destinations refused (policy registryOnly). */
export const BLACKHOLE_CLUSTER = 'capture:blackhole';

/** An outbound capture chain: these addresses on this port belong to `service`. */
export function captureOutboundChainName(service: string, port: number): string {
  return `capture:outbound:${service}:${port}`;
}

/** An inbound capture chain of a workload; transport set in permissive mode (one chain each). */
export function captureInboundChainName(workload: string, transport?: 'mtls' | 'plaintext'): string {
  return transport === undefined ? `capture:inbound:${workload}` : `capture:inbound:${workload}:${transport}`;
}

/** The chain taking connections made to a capture listener's own port (nothing to forward to: closed, counted). */
export function captureLoopChainName(direction: 'outbound' | 'inbound'): string {
  return `capture:${direction}:loop`;
}

/** The cluster of the trace collector (agent config `tracing.address`) the HCM tracers send spans to. */
export const TRACING_CLUSTER = 'tracing:collector';
