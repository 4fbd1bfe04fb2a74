/**
 * The ServiceIdentity resources the sync keeps in the control plane's policy
 * store: one per synced Kubernetes Service that has registered endpoints,
 * named `k8s-<cluster>-...` and applied as the sync's actor
 * (`k8s-sync:<cluster>`, the resource's updatedBy and the audit actor). A
 * resource of that name last written by anyone else (an operator) is not the
 * sync's any more: it is left alone and reported as a conflict.
 */
import { POLICY_API_VERSION } from '../../lib/policy/schema.js';
import { stableJson } from '../../lib/stable-json.js';
import type { PolicyStore } from '../policy/policy-store.js';
import type { SyncedIdentity } from './to-consul.js';

export interface IdentityChanges {
  readonly applied: readonly string[];
  readonly deleted: readonly string[];
  /** Names held by a resource the sync did not write last. */
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

/** Brings the store's sync-owned ServiceIdentity resources to `desired` (the whole set: others of the sync's are deleted). */
export function keepIdentities(
  store: PolicyStore,
  desired: readonly SyncedIdentity[],
  o: { cluster: string; actor: string },
): IdentityChanges {
  const prefix = `k8s-${o.cluster}-`;
  const records = new Map(store.list('ServiceIdentity').map((r) => [r.name, r]));
  const wanted = new Map(desired.filter((d) => d.allowedIdentities.length > 0).map((d) => [d.name, identityDocument(d)]));
  const conflicts: string[] = [];
  const toApply: unknown[] = [];
  const applied: string[] = [];
  for (const [name, doc] of wanted) {
    const record = records.get(name);
    if (record !== undefined && record.updatedBy !== o.actor) {
      conflicts.push(name);
      continue;
    }
    if (record !== undefined && stableJson(record.source) === stableJson(doc)) continue;
    toApply.push(doc);
    applied.push(name);
  }
  // Narrowing and widening go in one apply: all or nothing, one revision.
  if (toApply.length > 0) store.apply(toApply, o.actor);
  const deleted: string[] = [];
  for (const record of records.values()) {
    if (!record.name.startsWith(prefix) || record.updatedBy !== o.actor || wanted.has(record.name)) continue;
    store.delete('ServiceIdentity', record.name, o.actor);
    deleted.push(record.name);
  }
  return { applied, deleted, conflicts };
}
