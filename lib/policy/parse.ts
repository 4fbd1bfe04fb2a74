/**
 * One policy document (already parsed from YAML/JSON) -> a validated
 * PolicyDocument, or the list of problems with their field paths
 * (`spec.http[0].retries.attempts`). Pure; the control plane validates every
 * apply with it and agents parse what they receive with it.
 */
import { formatFieldPath } from '../config-file.js';
import { type PolicyDocument, type PolicyKind, type PolicySchemas, policySchemas } from './schema.js';

export interface PolicyIssue {
  /** Field path inside the document, e.g. `spec.rules[0].from.ids[1]`; "" for the document. */
  readonly path: string;
  readonly message: string;
}

export type ParsedPolicy =
  | { readonly ok: true; readonly document: PolicyDocument }
  | { readonly ok: false; readonly kind?: string; readonly name?: string; readonly issues: readonly PolicyIssue[] };

function peek(input: unknown): { kind?: string; name?: string } {
  if (typeof input !== 'object' || input === null) return {};
  const doc = input as { kind?: unknown; metadata?: { name?: unknown } };
  return {
    ...(typeof doc.kind === 'string' ? { kind: doc.kind } : {}),
    ...(typeof doc.metadata?.name === 'string' ? { name: doc.metadata.name } : {}),
  };
}

/**
 * `schemas`: the policy schemas to parse with. A caller that parses several
 * documents builds them once (policySchemas()) and passes them to each call;
 * without them, this call builds its own.
 */
export function parsePolicyDocument(input: unknown, schemas: PolicySchemas = policySchemas()): ParsedPolicy {
  const envelope = schemas.policyEnvelope.safeParse(input);
  if (!envelope.success) {
    return {
      ok: false,
      ...peek(input),
      issues: envelope.error.issues.map((i) => ({ path: formatFieldPath(i.path), message: i.message })),
    };
  }
  const { kind, metadata, spec } = envelope.data;
  const parsed = schemas.SPEC_SCHEMAS[kind as PolicyKind].safeParse(spec);
  if (!parsed.success) {
    return {
      ok: false,
      kind,
      name: metadata.name,
      issues: parsed.error.issues.map((i) => ({ path: formatFieldPath(['spec', ...i.path]), message: i.message })),
    };
  }
  return { ok: true, document: { apiVersion: envelope.data.apiVersion, kind, name: metadata.name, spec: parsed.data } as PolicyDocument };
}
