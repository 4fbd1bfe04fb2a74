/**
 * The control plane's policy resources (SQLite, migration 2): what the admin
 * API applies and the Policy.Watch stream reads. Implemented in
 * policy-repo.ts; this interface is the seam between the two.
 */
import type { PolicyKind, StoredPolicy } from '../../lib/policy/schema.js';

export interface PolicyRecord extends StoredPolicy {
  readonly updatedAtMs: number;
  readonly updatedBy: string;
}

export interface PolicyChange {
  readonly kind: PolicyKind;
  readonly name: string;
  readonly action: 'created' | 'updated' | 'unchanged' | 'deleted';
  readonly before?: unknown;
  readonly after?: unknown;
}

export interface ApplyResult {
  /** The mesh revision after the apply (the current one for a dry run or when nothing changed). */
  readonly revision: number;
  readonly changes: readonly PolicyChange[];
}

export interface PolicyStore {
  /** The mesh-wide revision: bumped once per apply or delete that changed something. */
  revision(): number;
  list(kind?: PolicyKind): readonly PolicyRecord[];
  get(kind: PolicyKind, name: string): PolicyRecord | undefined;
  /**
   * All-or-nothing: every document is validated (and references resolved
   * within the resulting set) before anything is stored; a bad one throws
   * MESH_E_POLICY_INVALID with every problem (index, kind, name, field path).
   */
  apply(documents: readonly unknown[], actor: string, options?: { dryRun?: boolean }): ApplyResult;
  delete(kind: PolicyKind, name: string, actor: string): ApplyResult;
  /** Called after a committed change, with the new revision. */
  onChange(listener: (revision: number) => void): () => void;
}
