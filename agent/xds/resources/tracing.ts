/**
 * Distributed tracing (agent config `tracing`): the HCM `tracing` block of
 * every inbound and outbound HTTP connection manager and the collector's
 * cluster. Envoy starts a trace for `samplingPercent` of the requests that
 * arrive without one (a request that carries a sampled trace is always
 * traced), propagates its context (B3 headers with Zipkin, W3C traceparent
 * with OpenTelemetry) upstream, and sends its spans to the collector.
 *
 * Spans name the services: the server span of a workload's inbound listener
 * is named after the workload, the client span of an outbound listener
 * `<caller> -> <service>` (route decorators, not propagated), and both carry
 * the tags mesh.direction, mesh.service and (outbound) mesh.caller.
 * OpenTelemetry's service.name is the workload (inbound) or the caller
 * (outbound); Zipkin's service name is Envoy's own (the node's cluster,
 * `mesh-agent.<nodeName>`), since Envoy's Zipkin tracer has no other. Pure.
 */
import { isIP } from 'node:net';
import type { ModelTracing } from '../../model/proxy-model.js';
import { TRACING_CLUSTER } from '../names.js';
import { CONNECT_TIMEOUT, http2ProtocolOptions, socketAddress, type XdsResource } from './common.js';

const ZIPKIN_T = 'type.googleapis.com/envoy.config.trace.v3.ZipkinConfig';
const OTEL_T = 'type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig';
/** Where Zipkin accepts spans (its v2 JSON API). */
export const ZIPKIN_SPANS_PATH = '/api/v2/spans';

/** Access log and tracing settings the listener builders share (from the ProxyModel). */
export interface Telemetry {
  /** The access log file; absent: Envoy's stdout. */
  readonly accessLogPath?: string;
  readonly tracing?: ModelTracing;
}

/** What a connection manager's spans are about. */
export interface SpanSubject {
  readonly direction: 'inbound' | 'outbound';
  /** The local workload (inbound) or the upstream service (outbound). */
  readonly service: string;
  /** Outbound: the local workload that calls. */
  readonly caller?: string;
}

/** The span name of a connection manager's requests. */
export function spanName(subject: SpanSubject): string {
  return subject.direction === 'inbound' ? subject.service : `${subject.caller ?? ''} -> ${subject.service}`;
}

function literal(tag: string, value: string): XdsResource {
  return { tag, literal: { value } };
}

function provider(tracing: ModelTracing, serviceName: string): XdsResource {
  if (tracing.provider === 'zipkin')
    return {
      name: 'envoy.tracers.zipkin',
      typed_config: {
        '@type': ZIPKIN_T,
        collector_cluster: TRACING_CLUSTER,
        collector_endpoint: ZIPKIN_SPANS_PATH,
        collector_endpoint_version: 'HTTP_JSON',
        collector_hostname: tracing.host,
        trace_id_128bit: true,
        // Client and server spans get their own ids (Zipkin's v2 model).
        shared_span_context: { value: false },
      },
    };
  return {
    name: 'envoy.tracers.opentelemetry',
    typed_config: {
      '@type': OTEL_T,
      grpc_service: { envoy_grpc: { cluster_name: TRACING_CLUSTER, authority: tracing.host }, timeout: { seconds: '5' } },
      service_name: serviceName,
    },
  };
}

/** The HCM `tracing` block of a connection manager. */
export function hcmTracing(tracing: ModelTracing, subject: SpanSubject): XdsResource {
  return {
    random_sampling: { value: tracing.samplingPercent },
    custom_tags: [
      literal('mesh.direction', subject.direction),
      literal('mesh.service', subject.service),
      ...(subject.caller === undefined ? [] : [literal('mesh.caller', subject.caller)]),
    ],
    provider: provider(tracing, subject.direction === 'inbound' ? subject.service : (subject.caller ?? subject.service)),
  };
}

/** The route decorator naming a route's span (not sent upstream: the server names its own span). */
export function spanDecorator(subject: SpanSubject): XdsResource {
  return { operation: spanName(subject), propagate: { value: false } };
}

/** Adds the span decorator to each route when tracing is on; the routes as they are when off. */
export function decorateRoutes(routes: XdsResource[], tracing: ModelTracing | undefined, subject: SpanSubject): XdsResource[] {
  if (tracing === undefined) return routes;
  const decorator = spanDecorator(subject);
  return routes.map((r) => ({ ...r, decorator }));
}

/** The collector's cluster: STATIC for an IP address, STRICT_DNS for a name; HTTP/2 for OpenTelemetry's gRPC. */
export function buildTracingCluster(tracing: ModelTracing): XdsResource {
  const cluster: XdsResource = {
    name: TRACING_CLUSTER,
    type: isIP(tracing.host) === 0 ? 'STRICT_DNS' : 'STATIC',
    connect_timeout: CONNECT_TIMEOUT,
    load_assignment: {
      cluster_name: TRACING_CLUSTER,
      endpoints: [{ lb_endpoints: [{ endpoint: { address: socketAddress(tracing.host, tracing.port) } }] }],
    },
  };
  if (tracing.provider === 'opentelemetry') cluster.typed_extension_protocol_options = http2ProtocolOptions();
  return cluster;
}
