/**
 * Remembers the upstreams buildModel made, so that a rebuild after a catalog
 * change remakes only the upstreams of the services that changed.
 *
 * An upstream is a pure function of its caller, namespace, service, local
 * port and kind (explicit, mirror-only, capture-only), of the service's
 * ServiceView in the catalog view, and of the policy documents, the trust
 * domain and the zone. The catalog watcher keeps the ServiceView object of a
 * service whose instances did not change (agent/discovery/catalog-watch.ts),
 * so an entry is reused when its ServiceView is the very same object; any
 * other change of the context (a policy document added, removed or replaced
 * by a new object, another trust domain or zone) forgets every entry. A
 * reused upstream is the same (frozen) object as before, which lets
 * buildSnapshot reuse its resources too (BuildMemo.group).
 *
 * Entries not used by a build are dropped when it commits. The output of
 * buildModel is the same with or without a memo (test/agent/model/model-memo.test.ts
 * compares both on random edits).
 */
import type { PolicyDocument } from '../../lib/policy/schema.js';
import type { CatalogInstance, ServiceView } from '../discovery/catalog-view.js';
import type { ModelUpstream } from './proxy-model.js';

/** One upstream as buildModel makes it, with what it reports besides the upstream itself. */
export interface BuiltUpstream {
  readonly upstream: ModelUpstream;
  /** Catalog instances left out (outside the mesh or refused by secure naming); 0: none. */
  readonly skipped: number;
  /** The secure-naming problem text, when instances were refused. */
  readonly refused?: string;
  /** The catalog instances secure naming kept (the capture chains use them). */
  readonly kept: readonly CatalogInstance[];
}

interface Entry {
  readonly view: ServiceView | undefined;
  readonly built: BuiltUpstream;
}

interface Context {
  readonly policies: readonly PolicyDocument[];
  readonly trustDomain: string;
  readonly zone: string | undefined;
}

function sameContext(a: Context | undefined, b: Context): boolean {
  if (a === undefined || a.trustDomain !== b.trustDomain || a.zone !== b.zone || a.policies.length !== b.policies.length) return false;
  return a.policies.every((doc, i) => doc === b.policies[i]);
}

export class ModelMemo {
  private context: Context | undefined;
  private previous = new Map<string, Entry>();
  private current = new Map<string, Entry>();

  /** Starts a build in this context; a different context forgets every entry. */
  begin(context: Context): void {
    if (!sameContext(this.context, context)) {
      this.previous = new Map();
      this.current = new Map();
    }
    this.context = { ...context, policies: [...context.policies] };
  }

  /** The upstream made for `key` from this ServiceView, made by `build` when there is none. */
  upstream(key: string, view: ServiceView | undefined, build: () => BuiltUpstream): BuiltUpstream {
    let entry = this.current.get(key) ?? this.previous.get(key);
    if (entry === undefined || entry.view !== view) {
      const built = build();
      Object.freeze(built.upstream);
      entry = { view, built };
    }
    this.current.set(key, entry);
    return entry.built;
  }

  /** Ends a build: what it did not use is forgotten. */
  commit(): void {
    this.previous = this.current;
    this.current = new Map();
  }
}
