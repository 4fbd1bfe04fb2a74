/**
 * NACK rollback of policy resources, as pure functions of three sets:
 * - received: the policy resources the source holds (PolicySource.current());
 * - lastAccepted: per resource (kind/name), the last version that was part of
 *   a snapshot Envoy fully acknowledged;
 * - rolledBack: per resource, the version Envoy rejected and why.
 *
 * The data plane builds from `effectivePolicy(...)`. When Envoy NACKs a
 * snapshot, `rollBack(...)` marks every resource that changed since the last
 * fully acknowledged snapshot as rolled back: it is replaced by its last
 * accepted version, or left out when none was ever accepted. A rolled-back
 * resource stays so until a NEWER version of it arrives from the source
 * (version or revision above the rejected one), so a NACK cannot start a
 * loop: after a rollback nothing differs from what Envoy accepted, and a
 * second NACK finds nothing to roll back.
 *
 * Except where leaving a resource out would widen access: an
 * AuthorizationPolicy or a ServiceIdentity that Envoy never accepted is kept
 * (fail closed). Envoy goes on rejecting it and keeps its previous
 * configuration; a listener it never had stays absent. Status still shows it
 * rolled back, with `kept`.
 */
import { POLICY_API_VERSION, type PolicyDocument, type PolicySchemas, policySchemas, type StoredPolicy } from '../../lib/policy/schema.js';

/** `TrafficPolicy/api-defaults`: one policy resource, whatever its version. */
export type PolicyKey = string;

/** Kinds whose absence would let more peers in: never dropped by a rollback. */
export const FAIL_CLOSED_KINDS: ReadonlySet<string> = new Set(['AuthorizationPolicy', 'ServiceIdentity']);

export const policyKey = (r: { readonly kind: string; readonly name: string }): PolicyKey => `${r.kind}/${r.name}`;

export interface RolledBack {
  /** The version (and mesh revision) Envoy rejected. */
  readonly version: number;
  readonly revision: number;
  /** Envoy's error_detail. */
  readonly detail: string;
  readonly at: number;
  /** The version served instead; absent: the resource is left out (no version of it was ever accepted). */
  readonly restored?: number;
}

export type AcceptedSet = ReadonlyMap<PolicyKey, StoredPolicy>;
export type RolledBackSet = ReadonlyMap<PolicyKey, RolledBack>;

const sameVersion = (a: StoredPolicy, b: { version: number; revision: number } | undefined) =>
  b !== undefined && a.version === b.version && a.revision === b.revision;

/** A version of the resource later than the one Envoy rejected. */
export const isNewer = (r: StoredPolicy, rejected: RolledBack) => r.version > rejected.version || r.revision > rejected.revision;

export interface EffectivePolicy {
  /** What the data plane builds from, in the source's order. */
  readonly resources: readonly StoredPolicy[];
  /** The rollbacks still in force: those of resources gone from the source, or superseded by a newer version, are dropped. */
  readonly rolledBack: RolledBackSet;
}

/** The policy set the data plane builds from. Pure. */
export function effectivePolicy(received: readonly StoredPolicy[], lastAccepted: AcceptedSet, rolledBack: RolledBackSet): EffectivePolicy {
  const resources: StoredPolicy[] = [];
  const still = new Map<PolicyKey, RolledBack>();
  for (const r of received) {
    const key = policyKey(r);
    const rb = rolledBack.get(key);
    if (rb === undefined || isNewer(r, rb)) {
      resources.push(r);
      continue;
    }
    still.set(key, rb);
    const previous = lastAccepted.get(key);
    if (previous !== undefined) resources.push(previous);
    else if (FAIL_CLOSED_KINDS.has(r.kind)) resources.push(r);
  }
  return { resources, rolledBack: still };
}

/** The resources of `effective` that differ from what Envoy last accepted (new ones included). */
export function changedSinceAccepted(effective: readonly StoredPolicy[], lastAccepted: AcceptedSet): StoredPolicy[] {
  return effective.filter((r) => !sameVersion(r, lastAccepted.get(policyKey(r))));
}

/**
 * Envoy NACKed the snapshot built from `effective`: the rolled-back set after
 * it, or undefined when no policy resource changed since the last fully
 * acknowledged snapshot (the NACK is not policy's doing; nothing to roll back)
 * or every changed one is already rolled back.
 */
export function rollBack(input: {
  readonly effective: readonly StoredPolicy[];
  readonly lastAccepted: AcceptedSet;
  readonly rolledBack: RolledBackSet;
  readonly detail: string;
  readonly at: number;
}): RolledBackSet | undefined {
  // A resource already rolled back at this version (a second NACK of the same snapshot, for another xDS type) keeps its entry.
  const changed = changedSinceAccepted(input.effective, input.lastAccepted).filter(
    (r) => !sameVersion(r, input.rolledBack.get(policyKey(r))),
  );
  if (changed.length === 0) return undefined;
  const next = new Map(input.rolledBack);
  for (const r of changed) {
    const restored = input.lastAccepted.get(policyKey(r))?.version;
    next.set(policyKey(r), {
      version: r.version,
      revision: r.revision,
      detail: input.detail,
      at: input.at,
      ...(restored === undefined ? {} : { restored }),
    });
  }
  return next;
}

/** Envoy fully acknowledged a snapshot built from `effective`: those versions become the last accepted ones. */
export function accepted(lastAccepted: AcceptedSet, effective: readonly StoredPolicy[]): AcceptedSet {
  if (effective.every((r) => sameVersion(r, lastAccepted.get(policyKey(r))))) return lastAccepted;
  const next = new Map(lastAccepted);
  for (const r of effective) next.set(policyKey(r), r);
  return next;
}

/**
 * An AuthorizationPolicy the agent cannot parse (an agent older than its
 * control plane, a damaged disk copy) whose target it can still read: a
 * deny-all policy for that target, so the failure is closed. Undefined for
 * other kinds, or when not even the target can be read. `schemas`: the policy
 * schemas of the caller's parse (lib/policy/parse.ts), built when absent.
 */
export function failClosedAuthorization(r: StoredPolicy, schemas?: PolicySchemas): PolicyDocument | undefined {
  if (r.kind !== 'AuthorizationPolicy') return undefined;
  const spec = (r.source as { spec?: { target?: unknown } } | undefined)?.spec;
  const parsed = (schemas ?? policySchemas()).target.safeParse(spec?.target);
  if (!parsed.success) return undefined;
  return {
    apiVersion: POLICY_API_VERSION,
    kind: 'AuthorizationPolicy',
    name: r.name,
    spec: { target: parsed.data, defaultAction: 'deny', rules: [] },
  };
}
