/**
 * The ServiceIdentity resources the sync keeps in the control plane's policy
 * store: one per synced (service, namespace) that has registered endpoints,
 * named `k8s-<cluster>-...` and applied as the sync's actor
 * (`k8s-sync:<cluster>`, the resource's updatedBy and the audit actor).
 *
 * The sync never overrides an operator: a resource of the same name last
 * written by anyone else, or another resource claiming the same service and
 * namespace (the store allows one claim per pair), wins; the sync's is not
 * written (or is deleted) and the name is reported as a conflict. Who may
 * serve the service is then what the operator's resource says.
 */
import { parsePolicyDocument } from '../../lib/policy/parse.js';
import { POLICY_API_VERSION } from '../../lib/policy/schema.js';
import { stableJson } from '../../lib/stable-json.js';
import { POLICY_SCHEMAS } from '../policy/policy-schemas.js';
import type { PolicyRecord, PolicyStore } from '../policy/policy-store.js';
import type { SyncedIdentity } from './to-consul.js';

export interface IdentityChanges {
  readonly applied: readonly string[];
  readonly deleted: readonly string[];
  /** Names the sync would write that an operator's resource holds (the same name, or the same service and namespace). */
  readonly conflicts: readonly string[];
}

export function identityDocument(identity: SyncedIdentity): unknown {
  return {
    apiVersion: POLICY_API_VERSION,
    kind: 'ServiceIdentity',
    metadata: { name: identity.name },
    spec: { service: identity.service, namespace: identity.namespace, allowedIdentities: [...identity.allowedIdentities] },
  };
}

const claim = (service: string, namespace: string) => `${namespace}/${service}`;

/** The (service, namespace) a stored ServiceIdentity claims, defaults applied. */
function claimOf(record: PolicyRecord): string | undefined {
  const parsed = parsePolicyDocument(record.source, POLICY_SCHEMAS);
  if (!parsed.ok || parsed.document.kind !== 'ServiceIdentity') return undefined;
  return claim(parsed.document.spec.service, parsed.document.spec.namespace);
}

/** Brings the store's sync-owned ServiceIdentity resources to `desired` (the whole set: others of the sync's are deleted). */
export function keepIdentities(
  store: PolicyStore,
  desired: readonly SyncedIdentity[],
  o: { cluster: string; actor: string },
): IdentityChanges {
  const prefix = `k8s-${o.cluster}-`;
  const records = store.list('ServiceIdentity');
  const byName = new Map(records.map((r) => [r.name, r]));
  const ours = (r: PolicyRecord) => r.name.startsWith(prefix) && r.updatedBy === o.actor;
  const othersClaims = new Set(records.filter((r) => !ours(r)).map(claimOf));
  const conflicts: string[] = [];
  // Two Services of one namespace may map to one Consul name: one resource (the first name) allows both sets.
  const byClaim = new Map<string, SyncedIdentity>();
  for (const d of desired) {
    if (d.allowedIdentities.length === 0) continue;
    const c = claim(d.service, d.namespace);
    const record = byName.get(d.name);
    if ((record !== undefined && !ours(record)) || othersClaims.has(c)) {
      conflicts.push(d.name);
      continue;
    }
    const first = byClaim.get(c);
    const allowed = [...new Set([...(first?.allowedIdentities ?? []), ...d.allowedIdentities])].sort();
    byClaim.set(c, { ...(first ?? d), allowedIdentities: allowed });
  }
  const wanted = new Map([...byClaim.values()].map((d) => [d.name, identityDocument(d)]));
  const deleted: string[] = [];
  // Deletes first: a resource of the sync's that moved to another name frees its claim for the new one.
  for (const record of records) {
    if (!ours(record) || wanted.has(record.name)) continue;
    store.delete('ServiceIdentity', record.name, o.actor);
    deleted.push(record.name);
  }
  const toApply = [...wanted].filter(([name, doc]) => stableJson(byName.get(name)?.source) !== stableJson(doc));
  // Narrowing and widening go in one apply: all or nothing, one revision.
  if (toApply.length > 0)
    store.apply(
      toApply.map(([, doc]) => doc),
      o.actor,
    );
  return { applied: toApply.map(([name]) => name), deleted, conflicts };
}
