/**
 * BuildMemo: what buildSnapshot (snapshot-build.ts) keeps between rebuilds of
 * one node's snapshot, so a rebuild costs what changed.
 */
import { deepFreeze } from '../../lib/deep-freeze.js';
import { contentHash, stableJson } from '../../lib/stable-json.js';
import type { ModelUpstream } from '../model/proxy-model.js';
import type { XdsResource } from './resources/common.js';
import type { ResourceKind, Snapshot } from './snapshot.js';

export interface MemoEntry {
  readonly resource: XdsResource;
  readonly hash: string;
}

/** What one group (an upstream) made: its resources in the order they were added, with their memo keys. */
export interface GroupItem {
  readonly kind: ResourceKind;
  readonly key: string;
  readonly entry: MemoEntry;
}

/**
 * Remembers built resources between rebuilds, keyed by their inputs: a
 * rebuild after one endpoint changed builds and hashes only that upstream's
 * resources and reuses the (frozen) objects of the rest, which keeps rebuilds
 * fast and the agent's garbage low. Entries not used by a build are dropped.
 *
 * Groups: the resources of one upstream are also remembered by the upstream
 * object and a context string (what else they depend on). An upstream that
 * is the very same object as in the previous build (agent/model/model-memo.ts
 * keeps unchanged upstreams) gets its resources back without computing any
 * key: a one-endpoint change costs one upstream, not 200 keys.
 */
export class BuildMemo {
  private previous = new Map<string, MemoEntry>();
  private current = new Map<string, MemoEntry>();
  private groups = new WeakMap<object, { readonly context: string; readonly items: readonly GroupItem[] }>();
  private recording: GroupItem[] | undefined;
  readonly hashes = new WeakMap<object, string>();
  /** The snapshot the last build made: makeSnapshot takes its unchanged kinds over whole. */
  lastSnapshot: Snapshot | undefined;
  /** What the last build was made of, for the next one's patch path (snapshot-build.ts); undefined: build in full. */
  last: LastBuild | undefined;
  /** Builds made in full and by the patch path. */
  readonly builds = { full: 0, patched: 0 };

  resource(kind: ResourceKind, input: unknown, build: () => XdsResource): XdsResource {
    const key = `${kind}\0${typeof input === 'string' ? input : stableJson(input)}`;
    let entry = this.current.get(key) ?? this.previous.get(key);
    if (entry === undefined) {
      const resource = deepFreeze(build());
      entry = { resource, hash: contentHash(resource) };
      this.hashes.set(resource, entry.hash);
    }
    this.current.set(key, entry);
    this.recording?.push({ kind, key, entry });
    return entry.resource;
  }

  /**
   * Runs `body` (which makes its resources with resource() and adds them),
   * or, when `owner` made its resources in the same context before, adds
   * those again in the same order and keeps their entries.
   */
  group(owner: object, context: string, body: () => void, add: (kind: ResourceKind, resource: XdsResource) => void): void {
    const known = this.groups.get(owner);
    if (known !== undefined && known.context === context) {
      for (const item of known.items) {
        this.current.set(item.key, item.entry);
        this.recording?.push(item);
        add(item.kind, item.entry.resource);
      }
      return;
    }
    const outer = this.recording;
    const items: GroupItem[] = [];
    this.recording = items;
    try {
      body();
    } finally {
      this.recording = outer;
    }
    outer?.push(...items);
    this.groups.set(owner, { context, items });
  }

  /** The items `owner` made in `context` at its latest build, if that is what the memo holds. */
  itemsOf(owner: object, context: string): readonly GroupItem[] | undefined {
    const known = this.groups.get(owner);
    return known !== undefined && known.context === context ? known.items : undefined;
  }

  /** Ends a build: what it did not use is forgotten. */
  commit(): void {
    this.previous = this.current;
    this.current = new Map();
  }

  /**
   * Ends a patched build (only some groups were made again): their new
   * entries join the rest, the entries of the items they replaced are
   * forgotten. What the other groups hold stays as it was.
   */
  commitPatch(replaced: readonly GroupItem[]): void {
    const kept = this.current;
    for (const item of replaced) if (!kept.has(item.key)) this.previous.delete(item.key);
    for (const [key, entry] of kept) this.previous.set(key, entry);
    this.current = new Map();
  }
}

/**
 * The last full or patched build, as the patch path needs it: the model's
 * upstreams in order, the resources added outside the upstream groups (the
 * workloads' and the tail's), which names more than one group adds, and the
 * resource maps of the snapshot it made.
 */
export interface LastBuild {
  readonly upstreams: readonly ModelUpstream[];
  /** Contexts of the upstreams' groups, by index (the caller's SVID, access log, telemetry). */
  readonly contexts: readonly string[];
  /** Resources added before the groups (workload listeners, clusters, secrets, the bundle), in order. */
  readonly head: readonly (readonly [ResourceKind, XdsResource])[];
  /** Resources added after the groups (tracing, capture), in order. */
  readonly tail: readonly (readonly [ResourceKind, XdsResource])[];
  /** `kind\0name` of every name added by two or more adds (shared by groups, or a group and the head or tail). */
  readonly shared: ReadonlySet<string>;
}
