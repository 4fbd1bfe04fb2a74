/**
 * Per policy resource the node holds: is it applied, and if not, why. Pure.
 *
 * States, the first that holds wins:
 * - invalid: the document does not parse (reason: the field paths);
 * - rolled-back: Envoy NACKed the configuration built with this version; the
 *   last accepted version is served instead, or nothing (reason: NACK detail);
 * - unused: it concerns no workload or upstream of this node (a MeshTelemetry:
 *   the node has no workload, agent.yaml sets its own tracing, or another
 *   MeshTelemetry with a lower name takes effect);
 * - unresolved: it references a service with no instance in the catalog yet,
 *   or a TrafficRoute subset that selects no instance;
 * - rejected: the configuration built with it was not taken: Envoy NACKed it
 *   (before the rollback is built), or the agent's own snapshot check refused it;
 * - applied: part of the snapshot served to Envoy.
 */
import type { ParsedPolicy } from '../../lib/policy/parse.js';
import type { PolicyDocument, StoredPolicy, SubsetSpec } from '../../lib/policy/schema.js';
import type { CatalogInstance, CatalogView } from '../discovery/catalog-view.js';
import type { PolicyOrigin } from '../policy/policy-source.js';
import type { Workload } from '../workloads/workload.js';
import {
  type AcceptedSet,
  FAIL_CLOSED_KINDS,
  failClosedAuthorization,
  type PolicyKey,
  policyKey,
  type RolledBackSet,
} from './policy-rollback.js';

export const POLICY_RESOURCE_STATES = ['applied', 'unresolved', 'rejected', 'rolled-back', 'invalid', 'unused'] as const;
export type PolicyResourceState = (typeof POLICY_RESOURCE_STATES)[number];

export interface PolicyResourceStatus {
  readonly kind: string;
  readonly name: string;
  /** The version the source holds (the one rolled back, for rolled-back). */
  readonly version: number;
  readonly revision: number;
  readonly state: PolicyResourceState;
  readonly reason?: string;
  /** rolled-back: the version served instead (absent: none, the resource is left out). */
  readonly servedVersion?: number;
}

/** DataPlaneStatus.policy: the policy the data plane builds from, per resource. */
export interface DataPlanePolicyStatus {
  readonly revision: number;
  readonly origin: PolicyOrigin;
  readonly resources: readonly PolicyResourceStatus[];
}

export interface PolicyStatusInput {
  readonly received: readonly StoredPolicy[];
  /** Each received resource parsed, by key. */
  readonly parsed: ReadonlyMap<PolicyKey, ParsedPolicy>;
  readonly rolledBack: RolledBackSet;
  readonly lastAccepted: AcceptedSet;
  readonly workloads: readonly Workload[];
  readonly view: CatalogView;
  /** Per resource, the version in the snapshot the cache serves; undefined: no snapshot served yet. */
  readonly served: ReadonlyMap<PolicyKey, StoredPolicy> | undefined;
  /** Envoy's NACK of the served snapshot, not followed by a full ACK. */
  readonly nack?: string;
  /** The agent's check refused the latest snapshot. */
  readonly snapshotError?: string;
  /** agent.yaml sets `tracing`: it wins over a MeshTelemetry policy. */
  readonly localTracing?: boolean;
}

const serviceOf = (doc: PolicyDocument): { side: 'client' | 'server' | 'mesh'; service?: string; spiffeId?: string } => {
  switch (doc.kind) {
    case 'MeshTelemetry':
      return { side: 'mesh' };
    case 'ServiceIdentity':
    case 'TrafficRoute':
    case 'TrafficPolicy':
      return { side: 'client', service: doc.spec.service };
    default:
      return { side: 'server', ...doc.spec.target };
  }
};

function meshTelemetryUnused(doc: PolicyDocument, input: PolicyStatusInput): string | undefined {
  if (input.localTracing === true) return 'agent.yaml sets tracing on this node, which takes precedence over MeshTelemetry';
  // A lower name left out by a rollback (no version of it was accepted) does not take effect.
  const leftOut = (key: PolicyKey) => input.rolledBack.has(key) && input.rolledBack.get(key)?.restored === undefined;
  const lower = [...input.parsed.values()].find(
    (p) => p.ok && p.document.kind === 'MeshTelemetry' && p.document.name < doc.name && !leftOut(policyKey(p.document)),
  );
  if (lower?.ok === true) return `MeshTelemetry ${lower.document.name} takes effect (the lowest name wins)`;
  if (input.workloads.length === 0) return 'no workload on this node';
  return undefined;
}

function unusedReason(doc: PolicyDocument, input: PolicyStatusInput): string | undefined {
  const { workloads } = input;
  const s = serviceOf(doc);
  if (s.side === 'mesh') return meshTelemetryUnused(doc, input);
  if (s.side === 'client') {
    if (workloads.some((w) => w.upstreams.some((u) => u.service === s.service))) return undefined;
    return `no workload on this node calls service ${s.service}`;
  }
  if (s.service !== undefined) {
    if (workloads.some((w) => w.name === s.service)) return undefined;
    return `no workload on this node serves service ${s.service}`;
  }
  if (workloads.some((w) => w.spiffeId === s.spiffeId)) return undefined;
  return `no workload on this node has identity ${s.spiffeId}`;
}

export const selects = (subset: SubsetSpec, i: CatalogInstance): boolean =>
  subset.tags.every((tag) => i.tags.includes(tag)) && Object.entries(subset.meta).every(([k, v]) => i.meta[k] === v);

const describeSubset = (s: SubsetSpec) =>
  [...s.tags.map((tag) => `tag ${tag}`), ...Object.entries(s.meta).map(([k, v]) => `${k}=${v}`)].join(', ');

function unresolvedReason(doc: PolicyDocument, view: CatalogView): string | undefined {
  const s = serviceOf(doc);
  if (s.side !== 'client' || s.service === undefined) return undefined;
  const instances = view.services[s.service]?.instances ?? [];
  if (instances.length === 0) return `service ${s.service} has no instance in the catalog yet`;
  if (doc.kind !== 'TrafficRoute') return undefined;
  for (const subset of doc.spec.subsets)
    if (!instances.some((i) => selects(subset, i)))
      return `subset ${subset.name} (${describeSubset(subset)}) selects no instance of ${s.service}`;
  for (const rule of doc.spec.http ?? []) {
    const mirror = rule.mirror?.service;
    if (mirror !== undefined && (view.services[mirror]?.instances.length ?? 0) === 0)
      return `mirror service ${mirror} of rule ${rule.name} has no instance in the catalog yet`;
  }
  return undefined;
}

const issuesText = (parsed: ParsedPolicy & { ok: false }) =>
  parsed.issues.map((i) => (i.path === '' ? i.message : `${i.path}: ${i.message}`)).join('; ');

function resourceState(r: StoredPolicy, input: PolicyStatusInput): Omit<PolicyResourceStatus, 'kind' | 'name' | 'version' | 'revision'> {
  const key = policyKey(r);
  const parsed = input.parsed.get(key);
  if (parsed === undefined || !parsed.ok)
    return {
      state: 'invalid',
      reason:
        (parsed === undefined ? 'not parsed yet' : `does not parse: ${issuesText(parsed)}`) +
        (failClosedAuthorization(r) === undefined ? '' : '; its target denies every request until a valid version arrives (fail closed)'),
    };
  const rb = input.rolledBack.get(key);
  if (rb !== undefined) {
    const instead =
      rb.restored !== undefined
        ? `serving version ${rb.restored} instead`
        : FAIL_CLOSED_KINDS.has(r.kind)
          ? 'kept (dropping it would let more peers in): Envoy keeps its previous configuration'
          : 'left out: no earlier version was accepted';
    return {
      state: 'rolled-back',
      reason: `Envoy rejected the configuration it produced (${rb.detail}); ${instead}`,
      ...(rb.restored === undefined ? {} : { servedVersion: rb.restored }),
    };
  }
  const unused = unusedReason(parsed.document, input);
  if (unused !== undefined) return { state: 'unused', reason: unused };
  const unresolved = unresolvedReason(parsed.document, input.view);
  if (unresolved !== undefined) return { state: 'unresolved', reason: unresolved };
  const served = input.served?.get(key);
  const inServed = served !== undefined && served.version === r.version && served.revision === r.revision;
  if (!inServed && input.snapshotError !== undefined)
    return { state: 'rejected', reason: `the agent refused the snapshot built with it: ${input.snapshotError}` };
  const accepted = input.lastAccepted.get(key);
  const changed = accepted === undefined || accepted.version !== r.version || accepted.revision !== r.revision;
  if (inServed && changed && input.nack !== undefined)
    return { state: 'rejected', reason: `Envoy rejected the configuration it produced: ${input.nack}` };
  return { state: 'applied' };
}

/** Every received resource with its state, sorted by kind then name. Pure. */
export function policyResourceStatuses(input: PolicyStatusInput): PolicyResourceStatus[] {
  return [...input.received]
    .sort((a, b) => (a.kind === b.kind ? (a.name < b.name ? -1 : 1) : a.kind < b.kind ? -1 : 1))
    .map((r) => ({ kind: r.kind, name: r.name, version: r.version, revision: r.revision, ...resourceState(r, input) }));
}
