/**
 * The tracing settings the agent config (`tracing`) and the mesh-wide
 * MeshTelemetry policy (`spec.tracing`) share: one schema, so both validate
 * alike (docs/operations/tracing-and-access-logs.md).
 */
import * as z from 'zod';

/** host:port as the agent's config, CLI and policy accept it. */
export const HOST_PORT = /^[^\s:]+:\d{1,5}$/;
/** A new zod schema for host:port (schemas are built per parse: agent/config/schema.ts). */
export function hostPort() {
  return z.string().regex(HOST_PORT, 'must be host:port');
}

/** A new schema for distributed tracing: the HCM tracer on every inbound and outbound HTTP listener, spans sent to a collector. */
export function tracingSchema() {
  return z.strictObject({
    /** zipkin: Zipkin's HTTP JSON API (/api/v2/spans); opentelemetry: OTLP over gRPC. */
    provider: z.enum(['zipkin', 'opentelemetry']),
    /** The collector, host:port (an IP address or a DNS name). */
    address: hostPort(),
    /** The share of requests that start a trace, 0 to 100 (a request that arrives with a sampled trace is always traced). */
    samplingPercent: z.number().min(0).max(100).default(100),
  });
}
export type TracingConfig = z.output<ReturnType<typeof tracingSchema>>;
