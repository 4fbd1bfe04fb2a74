/**
 * The input of the xDS builders: everything one Envoy needs to know, as plain
 * data. It is built (purely) from the workload files, the CatalogView and the
 * identities; the builders in agent/xds never look anywhere else.
 *
 * Transparent proxy later: an optional `transparentProxy` block (outbound and
 * inbound capture ports) will add one virtual outbound listener with the
 * original_dst listener filter whose filter chains reuse the per-upstream
 * route configurations and clusters below. Clusters, endpoints and routes are
 * therefore keyed by service only, never by `localPort`; only the explicit
 * outbound listener uses `localPort`.
 */

import type { TrafficPolicySpec, TrafficRouteSpec } from '../../lib/policy/schema.js';
import type { InboundPolicy } from './inbound-policy.js';

/** How Envoy speaks to a workload or a service. `grpc` is HTTP/2 with no route timeout. */
export const MESH_PROTOCOLS = ['http', 'http2', 'grpc', 'tcp'] as const;
export type MeshProtocol = (typeof MESH_PROTOCOLS)[number];

/** A local workload's SVID: the chain (leaf first) and its private key, PEM. */
export interface IdentityMaterial {
  readonly chainPem: string;
  readonly keyPem: string;
}

export interface Identities {
  /** SPIFFE ID -> the SVID chain and key of a local workload. */
  readonly certs: ReadonlyMap<string, IdentityMaterial>;
  readonly bundlePem: string;
}

/** A workload that runs on this host behind the local Envoy. */
export interface ModelWorkload {
  /** Workload name, unique on the node (used in resource names). */
  readonly name: string;
  readonly protocol: MeshProtocol;
  /** Port the application listens on, on 127.0.0.1. */
  readonly appPort: number;
  /** Port Envoy accepts mTLS on, on 0.0.0.0. */
  readonly meshPort: number;
  /** The workload's SPIFFE ID: its SVID and the SDS secret name. */
  readonly spiffeId: string;
  /** Server-side policy in force (authorization, mTLS mode, rate limit); absent: none. */
  readonly inbound?: InboundPolicy;
  /** JSON access log of its inbound and outbound traffic (workload file or agent default); absent: only with inbound policy. */
  readonly accessLog?: true;
}

/** One instance of an upstream service, as the catalog lists it. */
export interface ModelInstance {
  readonly address: string;
  /** The mesh port of the instance's Envoy (never the app port). */
  readonly meshPort: number;
  /** The SPIFFE ID the instance must present. */
  readonly spiffeId: string;
  /** Load-balancing weight, at least 1. */
  readonly weight: number;
  readonly healthy: boolean;
  /** Consul meta `mesh_zone` of the instance ("" or absent: unknown). */
  readonly zone?: string;
}

/** The instances of an upstream service that a TrafficRoute subset selects. */
export interface ModelSubset {
  readonly name: string;
  readonly instances: readonly ModelInstance[];
}

/**
 * The traffic management of one upstream: its service's TrafficRoute and
 * TrafficPolicy (validated specs, durations in ms) and the route's subsets
 * resolved against the catalog.
 */
export interface ModelTraffic {
  readonly route?: TrafficRouteSpec;
  readonly policy?: TrafficPolicySpec;
  readonly subsets: readonly ModelSubset[];
  /** The caller's zone when the policy prefers it: those endpoints get priority 0, the rest 1. */
  readonly localZone?: string;
}

/** A service a local workload calls through 127.0.0.1:localPort. */
export interface ModelUpstream {
  readonly service: string;
  readonly localPort: number;
  readonly protocol: MeshProtocol;
  /** Name of the local calling workload: its SVID is the client certificate of its own clusters. */
  readonly workload: string;
  readonly instances: readonly ModelInstance[];
  /**
   * Who may serve it (secure naming, agent/model/secure-naming.ts): exact
   * SPIFFE IDs and one-segment `*` patterns, from policy or the default rule,
   * never from the catalog. The cluster's peer check is built from these.
   */
  readonly acceptedIdentities: readonly string[];
  /** TrafficRoute/TrafficPolicy of the service; absent: no policy (one cluster, round robin). */
  readonly traffic?: ModelTraffic;
  /**
   * Only clusters and endpoints, no listener or route: a service the caller
   * does not call itself but mirrors requests to (`localPort` is 0).
   */
  readonly mirrorOnly?: boolean;
  /**
   * Reached only through the outbound capture listener (transparent proxy):
   * clusters, endpoints and route config, no explicit listener (`localPort` is 0).
   */
  readonly captureOnly?: boolean;
}

/** One outbound capture filter chain: these destination addresses on this port belong to `service`. */
export interface ModelCaptureChain {
  readonly service: string;
  /** The app port the instances listen on (the catalog's service port). */
  readonly port: number;
  /** Instance addresses (IPv4 or IPv6), sorted. */
  readonly addresses: readonly string[];
}

/**
 * Transparent proxy (agent config transparentProxy): the capture listeners
 * Envoy needs; iptables rules send traffic to them (agent/tproxy).
 */
export interface ModelCapture {
  /** 127.0.0.1 (and ::1) port of the outbound capture listener (original_dst). */
  readonly outboundPort: number;
  /** 0.0.0.0 (and ::) port of the inbound capture listener (original_dst). */
  readonly inboundPort: number;
  readonly ipv6: boolean;
  /** Destinations the mesh doesn't know: passthrough or refuse; both counted. */
  readonly policy: 'allow' | 'registryOnly';
  /** The local workload whose SVID captured outbound calls present ("" when there is none: no mesh chains). */
  readonly caller: string;
  /** Filter chains by destination; each uses upstream `service` of `caller`. */
  readonly chains: readonly ModelCaptureChain[];
  /** Local workloads captured inbound (their app ports go to the inbound capture listener). */
  readonly inboundWorkloads: readonly string[];
}

export interface ProxyModel {
  readonly node: { readonly name: string };
  /** e.g. `example.org`: inbound peers must have a `spiffe://<trustDomain>/` URI SAN. */
  readonly trustDomain: string;
  readonly workloads: readonly ModelWorkload[];
  readonly upstreams: readonly ModelUpstream[];
  /** The access log file (workloads with accessLog or server-side policy); absent: Envoy's stdout. */
  readonly accessLogPath?: string;
  /** Distributed tracing; absent: off. */
  readonly tracing?: ModelTracing;
  /** Transparent proxy capture listeners; absent: capture off. */
  readonly capture?: ModelCapture;
}

/** Distributed tracing (agent config `tracing`): the collector the HCM tracer sends spans to. */
export interface ModelTracing {
  readonly provider: 'zipkin' | 'opentelemetry';
  /** The collector: an IP address or a DNS name. */
  readonly host: string;
  readonly port: number;
  /** 0-100: the share of requests that start a trace. */
  readonly samplingPercent: number;
}

/** True for protocols carried by an HTTP connection manager. */
export function isHttpLike(protocol: MeshProtocol): boolean {
  return protocol !== 'tcp';
}

/** True for protocols that need HTTP/2 towards the peer. */
export function isHttp2(protocol: MeshProtocol): boolean {
  return protocol === 'http2' || protocol === 'grpc';
}
