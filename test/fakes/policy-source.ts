/**
 * A PolicySource the test sets by hand: `set(documents)` parses nothing, it
 * stores the documents as the control plane would stream them (one revision
 * per call, versions per resource) and tells the data plane. Used by data-plane unit tests and by
 * integration tests that exercise the Envoy side of a policy without the
 * control plane's stream.
 */
import type { PolicyOrigin, PolicySource } from '../../agent/policy/policy-source.js';
import type { PolicyKind, PolicySet, StoredPolicy } from '../../lib/policy/schema.js';

export class FakePolicySource implements PolicySource {
  private set_: PolicySet = { revision: 0, resources: [] };
  private origin_: PolicyOrigin = 'none';
  private readonly listeners = new Set<() => void>();
  interest: { services: readonly string[]; spiffeIds: readonly string[] } = { services: [], spiffeIds: [] };
  started = false;
  stopped = false;

  /**
   * Documents as a user applies them ({ apiVersion, kind, metadata: { name }, spec }).
   * As the control plane stores them: a resource whose document is unchanged keeps its
   * version and revision; a changed one gets version + 1 and the new revision.
   */
  set(documents: readonly unknown[], origin: PolicyOrigin = 'controlplane'): void {
    const revision = this.set_.revision + 1;
    const resources: StoredPolicy[] = documents.map((source) => {
      const doc = source as { kind: PolicyKind; metadata: { name: string } };
      const before = this.set_.resources.find((r) => r.kind === doc.kind && r.name === doc.metadata.name);
      if (before !== undefined && JSON.stringify(before.source) === JSON.stringify(source)) return before;
      return { kind: doc.kind, name: doc.metadata.name, version: (before?.version ?? 0) + 1, revision, source };
    });
    this.set_ = { revision, resources };
    this.origin_ = origin;
    for (const l of this.listeners) l();
  }

  current(): PolicySet {
    return this.set_;
  }
  origin(): PolicyOrigin {
    return this.origin_;
  }
  setInterest(interest: { services: readonly string[]; spiffeIds: readonly string[] }): void {
    this.interest = interest;
  }
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  async start(): Promise<void> {
    this.started = true;
  }
  stop(): void {
    this.stopped = true;
  }
}
