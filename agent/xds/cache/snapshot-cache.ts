/**
 * The snapshot cache: where the data plane (which builds snapshots) and the
 * ADS server (which speaks gRPC) meet. No gRPC here. Per node id it keeps the
 * served snapshot, its encoder and the watches of that node's streams.
 *
 * setSnapshot(node, snapshot), in this order:
 *   1. version: a snapshot whose content version equals the node's served one
 *      is a no-op (returns false, nothing is pushed);
 *   2. check: checkSnapshot; a snapshot with problems is refused with
 *      MESH_E_XDS_SNAPSHOT_INVALID and the node keeps the previous one;
 *   3. encode: every resource into its Any bytes once, reusing the encodings
 *      of unchanged resources (SnapshotEncoder, one per node);
 *   4. notify: each watch of the node gets the new ServedSnapshot, oldest
 *      watch first.
 * A stream watches its node once it knows the node id (the first request);
 * the watch is told the node's current snapshot at once, if there is one.
 * What Envoy acknowledged is the union over the node's live watches, the
 * newest stream's version first: during a hot restart the old epoch, whose
 * stream is still open, serves what it acknowledged until the new one has
 * acknowledged it too; a stream that closed (an Envoy that exited) no longer
 * counts.
 */
import { MeshError } from '../../../lib/errors.js';
import { checkSnapshot } from '../check-snapshot.js';
import type { Snapshot } from '../snapshot.js';
import { type AckedResources, NOTHING_ACKED, unionNewestFirst } from './acked-resources.js';
import { type ServedSnapshot, SnapshotEncoder } from './served-snapshot.js';

/** One stream's interest in its node's snapshots. */
export interface SnapshotWatch {
  /** The node's snapshot changed (or, at registration, the current one). */
  update(served: ServedSnapshot): void;
  /** What this stream's Envoy has acknowledged so far. */
  acked(): AckedResources;
}

export interface SnapshotCache {
  /** Checks, encodes and serves a node's snapshot; false when it equals the served one. Throws MESH_E_XDS_SNAPSHOT_INVALID. */
  setSnapshot(node: string, snapshot: Snapshot): boolean;
  /** The node's served snapshot, if any was accepted. */
  current(node: string): ServedSnapshot | undefined;
  /** Registers a stream's interest in a node; returns the function that ends it. */
  watch(node: string, watch: SnapshotWatch): () => void;
  /** Per kind, name -> version acknowledged on any live stream of the node (the newest stream's version first). */
  acked(node: string): AckedResources;
}

interface NodeEntry {
  readonly encoder: SnapshotEncoder;
  served: ServedSnapshot | undefined;
  /** In registration order: the last is the newest stream. */
  readonly watches: Set<SnapshotWatch>;
}

export function createSnapshotCache(): SnapshotCache {
  const nodes = new Map<string, NodeEntry>();
  const entry = (node: string): NodeEntry => {
    let e = nodes.get(node);
    if (e === undefined) {
      e = { encoder: new SnapshotEncoder(), served: undefined, watches: new Set() };
      nodes.set(node, e);
    }
    return e;
  };

  return {
    setSnapshot(node, snapshot) {
      const e = entry(node);
      if (e.served?.version === snapshot.version) return false;
      // Against the served snapshot (it passed): only the kinds that changed are checked again.
      const problems = checkSnapshot(snapshot, e.served?.snapshot);
      if (problems.length > 0) {
        throw new MeshError('MESH_E_XDS_SNAPSHOT_INVALID', `snapshot ${snapshot.version.slice(0, 12)} not served: ${problems.join('; ')}`, {
          details: { problems, node },
        });
      }
      const served = e.encoder.serve(snapshot);
      e.served = served;
      for (const w of [...e.watches]) w.update(served);
      return true;
    },
    current: (node) => nodes.get(node)?.served,
    watch(node, w) {
      const e = entry(node);
      e.watches.add(w);
      if (e.served !== undefined) w.update(e.served);
      return () => {
        e.watches.delete(w);
      };
    },
    acked(node) {
      const watches = [...(nodes.get(node)?.watches ?? [])];
      if (watches.length === 0) return NOTHING_ACKED;
      if (watches.length === 1) return (watches[0] as SnapshotWatch).acked();
      return unionNewestFirst(watches.reverse().map((w) => w.acked()));
    },
  };
}
