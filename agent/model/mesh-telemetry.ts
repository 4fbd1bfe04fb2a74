/**
 * Which tracing a node uses: agent.yaml `tracing` when it is set, else the
 * mesh-wide MeshTelemetry policy's `spec.tracing`, else none. Should a node
 * ever hold more than one MeshTelemetry (the control plane refuses a second
 * one at apply), the one with the lowest name takes effect. Pure.
 */
import type { PolicyDocument } from '../../lib/policy/schema.js';
import type { TracingConfig } from '../../lib/tracing.js';
import type { ModelTracing } from './proxy-model.js';

/** A tracing config as the model wants it (the address split into host and port). */
export function toModelTracing(tracing: TracingConfig): ModelTracing {
  const at = tracing.address.lastIndexOf(':');
  return {
    provider: tracing.provider,
    host: tracing.address.slice(0, at),
    port: Number(tracing.address.slice(at + 1)),
    samplingPercent: tracing.samplingPercent,
  };
}

type MeshTelemetryDocument = Extract<PolicyDocument, { kind: 'MeshTelemetry' }>;

/** The MeshTelemetry resource that takes effect among `policies`: the lowest name; undefined when there is none. */
export function meshTelemetryInForce(policies: readonly PolicyDocument[]): MeshTelemetryDocument | undefined {
  let chosen: MeshTelemetryDocument | undefined;
  for (const doc of policies) if (doc.kind === 'MeshTelemetry' && (chosen === undefined || doc.name < chosen.name)) chosen = doc;
  return chosen;
}

export interface ResolvedTracing {
  readonly tracing?: ModelTracing;
  /** Where it comes from: `agent.yaml` or `MeshTelemetry/<name>`; absent with no tracing. */
  readonly source?: string;
}

/** agent.yaml wins; else the MeshTelemetry in force; else no tracing. */
export function resolveTracing(agent: ModelTracing | undefined, policies: readonly PolicyDocument[]): ResolvedTracing {
  if (agent !== undefined) return { tracing: agent, source: 'agent.yaml' };
  const doc = meshTelemetryInForce(policies);
  if (doc === undefined) return {};
  return { tracing: toModelTracing(doc.spec.tracing), source: `MeshTelemetry/${doc.name}` };
}
