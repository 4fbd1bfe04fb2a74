/**
 * The policy side of the data plane's state, kept apart from it: which policy
 * resources the data plane builds from (the received set minus rollbacks),
 * which versions were part of a snapshot Envoy fully acknowledged, and what
 * Envoy rejected. The data plane tells it about snapshots served, refused,
 * acknowledged and NACKed; the decisions are the pure functions of
 * policy-rollback.ts and policy-status.ts.
 *
 * Cycle: build() -> the data plane sets the snapshot -> served() or refused();
 * then on every ACK of the node, acknowledged() records the versions once the
 * served snapshot is fully acknowledged; on a NACK, nacked() rolls the
 * changed resources back and asks for a rebuild.
 */
import type { Logger } from '../../lib/logger.js';
import { type ParsedPolicy, parsePolicyDocument } from '../../lib/policy/parse.js';
import { type PolicyDocument, type PolicySchemas, policySchemas, type StoredPolicy } from '../../lib/policy/schema.js';
import type { CatalogView } from '../discovery/catalog-view.js';
import type { PolicySource } from '../policy/policy-source.js';
import type { Workload } from '../workloads/workload.js';
import type { AckedResources } from '../xds/cache/acked-resources.js';
import { RESOURCE_KINDS, type Snapshot } from '../xds/snapshot.js';
import {
  type AcceptedSet,
  accepted,
  effectivePolicy,
  failClosedAuthorization,
  type PolicyKey,
  policyKey,
  type RolledBackSet,
  rollBack,
} from './policy-rollback.js';
import { type DataPlanePolicyStatus, policyResourceStatuses } from './policy-status.js';

/** Envoy runs every resource of the snapshot at the snapshot's version. */
export function fullyAcked(snapshot: Snapshot, acked: AckedResources): boolean {
  return RESOURCE_KINDS.every((kind) => {
    const have = acked[kind];
    for (const [name, version] of snapshot.versions[kind]) if (have.get(name) !== version) return false;
    return true;
  });
}

/** The policy schemas, built at the first call and kept by the caller for one pass over a set only. */
function lazySchemas(): () => PolicySchemas {
  let built: PolicySchemas | undefined;
  return () => {
    built ??= policySchemas();
    return built;
  };
}

const asMap = (resources: readonly StoredPolicy[]) => new Map(resources.map((r) => [policyKey(r), r]));

export class PolicyLifecycle {
  private lastAccepted: AcceptedSet = new Map();
  private rolledBack: RolledBackSet = new Map();
  /** Parsed documents by key, with the version they were parsed at. */
  private parsed = new Map<PolicyKey, { version: number; revision: number; result: ParsedPolicy }>();
  /** The effective set of the latest build, and of the snapshot the cache serves (with its version). */
  private built: readonly StoredPolicy[] = [];
  private served: { version: string; resources: ReadonlyMap<PolicyKey, StoredPolicy> } | undefined;
  private nack: { snapshot: string; detail: string } | undefined;
  private snapshotError: string | undefined;

  constructor(
    private readonly source: PolicySource,
    private readonly log: Logger,
  ) {}

  /** `schemas`: built by the first resource of a build that needs parsing, shared by the others (and dropped after the build). */
  private parse(r: StoredPolicy, schemas: () => PolicySchemas): ParsedPolicy {
    const key = policyKey(r);
    const known = this.parsed.get(key);
    if (known !== undefined && known.version === r.version && known.revision === r.revision) return known.result;
    const result = parsePolicyDocument(r.source, schemas());
    if (!result.ok)
      this.log.error('a policy resource does not parse; it is left out', { kind: r.kind, name: r.name, issues: result.issues });
    this.parsed.set(key, { version: r.version, revision: r.revision, result });
    return result;
  }

  /** The documents to build the model from: the received set with rollbacks applied, those that parse. */
  build(): readonly PolicyDocument[] {
    const received = this.source.current().resources;
    const effective = effectivePolicy(received, this.lastAccepted, this.rolledBack);
    this.rolledBack = effective.rolledBack;
    for (const key of [...this.parsed.keys()]) if (!received.some((r) => policyKey(r) === key)) this.parsed.delete(key);
    this.built = effective.resources;
    const documents: PolicyDocument[] = [];
    const schemas = lazySchemas();
    for (const r of effective.resources) {
      const parsed = this.parse(r, schemas);
      if (parsed.ok) documents.push(parsed.document);
      else {
        // Leaving out an AuthorizationPolicy would let every peer in: deny all at its target instead.
        const closed = failClosedAuthorization(r, schemas());
        if (closed !== undefined) documents.push(closed);
      }
    }
    return documents;
  }

  /** The resources the latest build used (received, with rollbacks applied). */
  inForce(): readonly StoredPolicy[] {
    return this.built;
  }

  /** The cache serves `version`, built from the latest build's policy (or equal to what it served). */
  servedAs(version: string): void {
    if (this.served?.version !== version) this.nack = undefined;
    this.served = { version, resources: asMap(this.built) };
    this.snapshotError = undefined;
  }

  refused(error: string): void {
    this.snapshotError = error;
  }

  /** After an ACK of the node (or a rebuild): when Envoy runs the whole served snapshot, its policy versions are accepted. */
  acknowledged(snapshot: Snapshot | undefined, acked: AckedResources): void {
    if (snapshot === undefined || this.served?.version !== snapshot.version) return;
    // Nothing would change (no NACK to clear, every served version already accepted): no walk over the whole snapshot.
    if (this.nack === undefined && accepted(this.lastAccepted, [...this.served.resources.values()]) === this.lastAccepted) return;
    if (!fullyAcked(snapshot, acked)) return;
    this.nack = undefined;
    this.lastAccepted = accepted(this.lastAccepted, [...this.served.resources.values()]);
  }

  /** Envoy rejected the served snapshot: true when policy resources were rolled back (rebuild). */
  nacked(detail: string, at: number): boolean {
    if (this.served === undefined) return false;
    this.nack = { snapshot: this.served.version, detail };
    const next = rollBack({
      effective: [...this.served.resources.values()],
      lastAccepted: this.lastAccepted,
      rolledBack: this.rolledBack,
      detail,
      at,
    });
    if (next === undefined) return false;
    const added = [...next.entries()].filter(([key]) => !this.rolledBack.has(key));
    this.rolledBack = next;
    this.log.warn('Envoy rejected the configuration built with some policy resources; they are rolled back', {
      code: 'MESH_E_XDS_NACK',
      detail,
      resources: added.map(([key, rb]) => ({ resource: key, rejected: rb.version, restored: rb.restored ?? null })),
    });
    return true;
  }

  /** localTracing: agent.yaml sets `tracing` (a MeshTelemetry is then unused on this node). */
  status(workloads: readonly Workload[], view: CatalogView, localTracing = false): DataPlanePolicyStatus {
    const set = this.source.current();
    const schemas = lazySchemas();
    const parsed = new Map(set.resources.map((r) => [policyKey(r), this.parse(r, schemas)]));
    return {
      revision: set.revision,
      origin: this.source.origin(),
      resources: policyResourceStatuses({
        received: set.resources,
        parsed,
        rolledBack: this.rolledBack,
        lastAccepted: this.lastAccepted,
        workloads,
        view,
        localTracing,
        served: this.served?.resources,
        ...(this.nack === undefined || this.nack.snapshot !== this.served?.version ? {} : { nack: this.nack.detail }),
        ...(this.snapshotError === undefined ? {} : { snapshotError: this.snapshotError }),
      }),
    };
  }
}
