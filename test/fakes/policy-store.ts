/**
 * A PolicyStore in memory (the real one is SQLite, controlplane/policy/policy-repo.ts):
 * documents are validated with the shared parser, an apply is all-or-nothing,
 * the revision is bumped once per apply or delete that changed something,
 * and onChange listeners hear of it. For unit tests of the Policy.Watch
 * fan-out, the integration test of distribution, and the fan-out benchmark.
 */
import type { ApplyResult, PolicyChange, PolicyRecord, PolicyStore } from '../../controlplane/policy/policy-store.js';
import { MeshError } from '../../lib/errors.js';
import { parsePolicyDocument } from '../../lib/policy/parse.js';
import type { PolicyKind } from '../../lib/policy/schema.js';

export class MemoryPolicyStore implements PolicyStore {
  private revision_ = 0;
  private readonly records = new Map<string, PolicyRecord>();
  private readonly listeners = new Set<(revision: number) => void>();

  constructor(private readonly now: () => number = Date.now) {}

  revision(): number {
    return this.revision_;
  }

  list(kind?: PolicyKind): readonly PolicyRecord[] {
    return [...this.records.values()]
      .filter((r) => kind === undefined || r.kind === kind)
      .sort((a, b) => a.kind.localeCompare(b.kind) || a.name.localeCompare(b.name));
  }

  get(kind: PolicyKind, name: string): PolicyRecord | undefined {
    return this.records.get(`${kind}/${name}`);
  }

  apply(documents: readonly unknown[], actor: string, options: { dryRun?: boolean } = {}): ApplyResult {
    const problems: Array<{ index: number; kind?: string; name?: string; path: string; message: string }> = [];
    const parsed = documents.map((doc, index) => {
      const result = parsePolicyDocument(doc);
      if (!result.ok) for (const issue of result.issues) problems.push({ index, kind: result.kind, name: result.name, ...issue });
      return result;
    });
    if (problems.length > 0)
      throw new MeshError('MESH_E_POLICY_INVALID', `${problems.length} problem(s) in the policy documents; nothing was stored`, {
        details: { problems },
      });
    const changes: PolicyChange[] = [];
    const next = this.revision_ + 1;
    const writes: PolicyRecord[] = [];
    parsed.forEach((p, index) => {
      if (!p.ok) return;
      const { kind, name } = p.document;
      const before = this.get(kind, name);
      const source = documents[index];
      const same = before !== undefined && JSON.stringify(before.source) === JSON.stringify(source);
      changes.push({
        kind,
        name,
        action: before === undefined ? 'created' : same ? 'unchanged' : 'updated',
        before: before?.source,
        after: source,
      });
      if (!same)
        writes.push({ kind, name, source, version: (before?.version ?? 0) + 1, revision: next, updatedAtMs: this.now(), updatedBy: actor });
    });
    if (options.dryRun || writes.length === 0) return { revision: this.revision_, changes };
    for (const r of writes) this.records.set(`${r.kind}/${r.name}`, r);
    return this.commit(next, changes);
  }

  delete(kind: PolicyKind, name: string, _actor: string): ApplyResult {
    const before = this.get(kind, name);
    if (before === undefined) throw new MeshError('MESH_E_POLICY_NOT_FOUND', `no ${kind} named ${name}`, { details: { kind, name } });
    this.records.delete(`${kind}/${name}`);
    return this.commit(this.revision_ + 1, [{ kind, name, action: 'deleted', before: before.source }]);
  }

  onChange(listener: (revision: number) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private commit(revision: number, changes: PolicyChange[]): ApplyResult {
    this.revision_ = revision;
    for (const l of this.listeners) l(revision);
    return { revision, changes };
  }
}
