/**
 * A snapshot: every resource one Envoy gets, built purely from the ProxyModel
 * and the identities (snapshot-build.ts), immutable, versioned by content hash (per resource and
 * as a whole), and checked for consistency before it is served.
 */
import { deepFreeze } from '../../lib/deep-freeze.js';
import { contentHash, entriesHash, versionsHash } from '../../lib/stable-json.js';
import type { XdsResource } from './resources/common.js';

export const RESOURCE_KINDS = ['listeners', 'clusters', 'endpoints', 'routes', 'secrets'] as const;
export type ResourceKind = (typeof RESOURCE_KINDS)[number];

export type { Identities, IdentityMaterial } from '../model/proxy-model.js';

export type ResourceMaps = { readonly [K in ResourceKind]: ReadonlyMap<string, XdsResource> };
export type VersionMaps = { readonly [K in ResourceKind]: ReadonlyMap<string, string> };

export interface Snapshot {
  /** Content hash of every (kind, name, version): equal models give equal versions. */
  readonly version: string;
  readonly resources: ResourceMaps;
  /** Content hash of each resource, by kind and name. */
  readonly versions: VersionMaps;
  /** Problems found while building (name collisions, unknown callers); checkSnapshot reports them. */
  readonly buildProblems: readonly string[];
}

/** The name a resource is served under (ClusterLoadAssignment uses cluster_name). */
export function resourceName(kind: ResourceKind, resource: XdsResource): string {
  const name = kind === 'endpoints' ? resource.cluster_name : resource.name;
  return typeof name === 'string' ? name : '';
}

/** Per versions map of a snapshot: the hash of its (name, version) entries, so a kind reused from the previous snapshot is not hashed again. */
const kindHashes = new WeakMap<ReadonlyMap<string, string>, string>();

/** True when both maps hold the very same resource objects under the same keys, in the same order. */
function sameEntries(a: ReadonlyMap<string, XdsResource>, b: ReadonlyMap<string, XdsResource>): boolean {
  if (a === b) return true;
  if (a.size !== b.size) return false;
  const other = b.entries();
  for (const [key, resource] of a) {
    const next = other.next().value as [string, XdsResource];
    if (next[0] !== key || next[1] !== resource) return false;
  }
  return true;
}

/**
 * Makes an immutable snapshot of the given resources (keyed by the map key)
 * and computes its versions. Exported so tests and later stages can assemble
 * snapshots directly.
 *
 * With `previous` (the last snapshot the same builder made), a kind whose map
 * holds the very same resource objects under the same keys (in the same order) is taken over
 * whole: the previous map, versions and hash, nothing sorted, frozen or hashed
 * again. A one-endpoint change then costs the endpoints, not all 800
 * resources, and later stages (check, encode, streams) see by identity which
 * kinds did not change. The version is the same either way: the hash of the
 * kinds' hashes, each the hash of its sorted (name, version) entries.
 */
export function makeSnapshot(
  resources: { [K in ResourceKind]: Map<string, XdsResource> },
  buildProblems: string[] = [],
  /** Content hashes already known (BuildMemo), by resource object. */
  knownHashes?: WeakMap<object, string>,
  previous?: Snapshot,
  /**
   * Kinds whose map differs from `previous`'s only in the values of these
   * names (same names, same order: the patch path of snapshot-build.ts): only
   * they are frozen and hashed again.
   */
  changedNames?: ReadonlyMap<ResourceKind, ReadonlySet<string>>,
): Snapshot {
  const kept = {} as { [K in ResourceKind]: ReadonlyMap<string, XdsResource> };
  const versions = {} as { [K in ResourceKind]: ReadonlyMap<string, string> };
  const summary: Array<[ResourceKind, string, string]> = [];
  for (const kind of RESOURCE_KINDS) {
    const before = previous?.resources[kind];
    const reused = before !== undefined && previous !== undefined && sameEntries(resources[kind], before);
    let byName: ReadonlyMap<string, string>;
    const names = changedNames?.get(kind);
    if (reused) {
      kept[kind] = before;
      byName = previous.versions[kind];
    } else if (names !== undefined && previous !== undefined) {
      const patched = new Map(previous.versions[kind]);
      for (const name of names) {
        const resource = deepFreeze(resources[kind].get(name) as XdsResource);
        patched.set(name, knownHashes?.get(resource) ?? contentHash(resource));
      }
      kept[kind] = resources[kind];
      byName = patched;
    } else {
      const fresh = new Map<string, string>();
      for (const name of [...resources[kind].keys()].sort()) {
        const resource = deepFreeze(resources[kind].get(name) as XdsResource);
        fresh.set(name, knownHashes?.get(resource) ?? contentHash(resource));
      }
      kept[kind] = resources[kind];
      byName = fresh;
    }
    versions[kind] = byName;
    let hash = kindHashes.get(byName);
    if (hash === undefined) {
      hash = versionsHash(byName);
      kindHashes.set(byName, hash);
    }
    summary.push([kind, '', hash]);
  }
  return Object.freeze({
    version: entriesHash(summary),
    resources: Object.freeze(kept),
    versions: Object.freeze(versions),
    buildProblems: Object.freeze([...buildProblems]),
  });
}

export function emptyResources(): { [K in ResourceKind]: Map<string, XdsResource> } {
  return { listeners: new Map(), clusters: new Map(), endpoints: new Map(), routes: new Map(), secrets: new Map() };
}
