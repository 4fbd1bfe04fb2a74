/**
 * Per xDS type: does the node's Envoy run what the agent built? Pure.
 *
 * A type is in sync when Envoy acknowledged every resource of that type in
 * the snapshot the agent serves, each at the snapshot's version: for
 * wildcard types (CDS, LDS) all of them and nothing else; for the others
 * (EDS, RDS, SDS) the ones Envoy subscribed to (it asks only for what its
 * clusters and listeners use). No stream from the node: nothing is in sync.
 */
import type { AckedResources } from '../xds/cache/acked-resources.js';
import type { StreamStatus } from '../xds/server/stream-status.js';
import type { Snapshot } from '../xds/snapshot.js';
import { XDS_TYPES } from '../xds/xds-types.js';

export interface TypeSync {
  /** CDS, EDS, LDS, RDS or SDS. */
  readonly type: string;
  readonly inSync: boolean;
  /** Resources of this type in the served snapshot. */
  readonly resources: number;
}

export function typeSync(input: {
  served: Snapshot | undefined;
  acked: AckedResources;
  /** The ADS streams of this node. */
  streams: readonly StreamStatus[];
}): TypeSync[] {
  const { served, acked, streams } = input;
  return XDS_TYPES.map((t) => {
    const built = served?.versions[t.kind] ?? new Map<string, string>();
    const have = acked[t.kind];
    if (served === undefined || streams.length === 0) return { type: t.short, inSync: false, resources: built.size };
    let wanted: string[];
    if (t.wildcard) wanted = [...built.keys()];
    else {
      const subscribed = new Set<string>();
      for (const s of streams)
        for (const st of s.types) {
          if (st.type !== t.short) continue;
          if (st.subscribed === '*') for (const name of built.keys()) subscribed.add(name);
          else for (const name of st.subscribed) subscribed.add(name);
        }
      wanted = [...subscribed].filter((name) => built.has(name));
    }
    const allAcked = wanted.every((name) => have.get(name) === built.get(name));
    const nothingExtra = !t.wildcard || [...have.keys()].every((name) => built.has(name));
    return { type: t.short, inSync: allAcked && nothingExtra, resources: built.size };
  });
}
