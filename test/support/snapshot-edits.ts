/**
 * Snapshots changed on purpose, for tests that need a configuration our
 * builders never produce (one Envoy rejects, or one our checks refuse):
 * - withResources: a copy of a snapshot with some resources replaced;
 * - overridingCache: a SnapshotCache decorator that applies such replacements
 *   to every snapshot set into it. A test composes it into the data plane
 *   (DataPlaneOptions.cache, or startMeshNode's snapshotCache); the data
 *   plane itself has no hook for it.
 */
import { createSnapshotCache, type SnapshotCache } from '../../agent/xds/cache/snapshot-cache.js';
import type { XdsResource } from '../../agent/xds/resources/common.js';
import { makeSnapshot, RESOURCE_KINDS, type ResourceKind, type Snapshot } from '../../agent/xds/snapshot.js';

export interface ResourceEdit {
  readonly kind: ResourceKind;
  readonly name: string;
  readonly resource: XdsResource;
}

/** A new snapshot: `snapshot` with the edited resources put in under their names (versions recomputed). */
export function withResources(snapshot: Snapshot, edits: Iterable<ResourceEdit>): Snapshot {
  const resources = {} as { [K in ResourceKind]: Map<string, XdsResource> };
  for (const kind of RESOURCE_KINDS) resources[kind] = new Map(snapshot.resources[kind]);
  for (const e of edits) resources[e.kind].set(e.name, e.resource);
  return makeSnapshot(resources, [...snapshot.buildProblems]);
}

/** `snapshot` with one existing resource changed by `change` (given a mutable copy). */
export function withResource(snapshot: Snapshot, kind: ResourceKind, name: string, change: (r: XdsResource) => XdsResource): Snapshot {
  const current = snapshot.resources[kind].get(name);
  if (current === undefined) throw new Error(`no ${kind} ${name}`);
  return withResources(snapshot, [{ kind, name, resource: change(structuredClone(current)) }]);
}

export interface OverridingCache extends SnapshotCache {
  /** From the next setSnapshot on, serves `resource` under `name` (undefined: stops replacing it). */
  override(kind: ResourceKind, name: string, resource: XdsResource | undefined): void;
}

export function overridingCache(inner: SnapshotCache = createSnapshotCache()): OverridingCache {
  const overrides = new Map<string, ResourceEdit>();
  return {
    setSnapshot: (node, snapshot) => inner.setSnapshot(node, overrides.size === 0 ? snapshot : withResources(snapshot, overrides.values())),
    current: (node) => inner.current(node),
    watch: (node, watch) => inner.watch(node, watch),
    acked: (node) => inner.acked(node),
    override(kind, name, resource) {
      const key = `${kind}\0${name}`;
      if (resource === undefined) overrides.delete(key);
      else overrides.set(key, { kind, name, resource });
    },
  };
}
