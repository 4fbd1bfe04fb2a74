/**
 * What an Envoy acknowledged, per resource: by kind, resource name -> the
 * resource version (its content hash, as in Snapshot.versions) it accepted.
 * A stream starts with nothing acknowledged; only ACKs fill it (a NACK or a
 * stale nonce leaves it as it was):
 * - state of the world: on the ACK of the latest response of a type, the set
 *   sent in that response becomes the acknowledged set of that type;
 * - delta: on the ACK of a nonce, the resources of that response get their
 *   versions and its removed_resources leave; an unsubscribed name leaves.
 * So `acked.listeners.get(name) === snapshot.versions.listeners.get(name)`
 * says Envoy runs that listener as the snapshot has it.
 */
import { RESOURCE_KINDS, type ResourceKind } from '../snapshot.js';

export type AckedResources = { readonly [K in ResourceKind]: ReadonlyMap<string, string> };

const EMPTY: ReadonlyMap<string, string> = new Map();

/** Nothing acknowledged (no stream, or a stream that has not acknowledged anything yet). */
export const NOTHING_ACKED: AckedResources = Object.freeze(
  Object.fromEntries(RESOURCE_KINDS.map((kind) => [kind, EMPTY])) as { [K in ResourceKind]: ReadonlyMap<string, string> },
);

/** A delta ACK applied to an acknowledged set: a new map (sets are shared, never changed in place). */
export function withAcked(
  acked: ReadonlyMap<string, string>,
  versions: ReadonlyMap<string, string>,
  removed: readonly string[],
): ReadonlyMap<string, string> {
  if (versions.size === 0 && removed.every((name) => !acked.has(name))) return acked;
  const next = new Map(acked);
  for (const [name, version] of versions) next.set(name, version);
  for (const name of removed) next.delete(name);
  return next;
}

/** Several streams' acknowledged sets as one: a name any of them acknowledged, with the first (newest) one's version. */
export function unionNewestFirst(sets: readonly AckedResources[]): AckedResources {
  const out = {} as { [K in ResourceKind]: Map<string, string> };
  for (const kind of RESOURCE_KINDS) {
    const merged = new Map<string, string>();
    for (const set of sets) for (const [name, version] of set[kind]) if (!merged.has(name)) merged.set(name, version);
    out[kind] = merged;
  }
  return out;
}
