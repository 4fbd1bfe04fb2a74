/**
 * The snapshot cache without gRPC: check, encode, version and watches per
 * node, and whose acknowledgements it reports for a node.
 */
import t from 'tap';
import { type AckedResources, NOTHING_ACKED } from '../../../../agent/xds/cache/acked-resources.js';
import type { ServedSnapshot } from '../../../../agent/xds/cache/served-snapshot.js';
import { createSnapshotCache, type SnapshotWatch } from '../../../../agent/xds/cache/snapshot-cache.js';
import { snapshotOf } from '../fixtures/streams.js';

function watcher(acked: AckedResources = NOTHING_ACKED) {
  const seen: string[] = [];
  const watch: SnapshotWatch = { update: (s: ServedSnapshot) => seen.push(s.version), acked: () => acked };
  return { watch, seen };
}

const ackedOf = (name: string, version: string): AckedResources => ({ ...NOTHING_ACKED, clusters: new Map([[name, version]]) });

t.test('setSnapshot checks, encodes and versions per node', async (t) => {
  const cache = createSnapshotCache();
  const v1 = snapshotOf({ clusters: { a: '5' }, endpoints: { a: [1] } });
  t.equal(cache.current('vm-1'), undefined, 'nothing before the first snapshot');
  t.equal(cache.setSnapshot('vm-1', v1), true);
  const served = cache.current('vm-1');
  t.equal(served?.version, v1.version);
  t.equal(served?.byKind.clusters.get('a')?.any.type_url, 'type.googleapis.com/envoy.config.cluster.v3.Cluster', 'encoded');
  t.equal(cache.setSnapshot('vm-1', snapshotOf({ clusters: { a: '5' }, endpoints: { a: [1] } })), false, 'same content: no-op');
  t.equal(cache.current('vm-1'), served, 'the same served snapshot stays');
  t.equal(cache.current('vm-2'), undefined, 'another node has its own snapshot');

  // A cluster without its ClusterLoadAssignment fails the check: refused, the previous one stays.
  const broken = snapshotOf({ clusters: { a: '5', b: '5' }, endpoints: { a: [1] } });
  t.throws(() => cache.setSnapshot('vm-1', broken), { code: 'MESH_E_XDS_SNAPSHOT_INVALID', message: /ClusterLoadAssignment "b"/ });
  t.equal(cache.current('vm-1'), served, 'refused: still the previous one');

  // Unchanged resources keep their encoding.
  const v2 = snapshotOf({ clusters: { a: '5', b: '5' }, endpoints: { a: [1], b: [2] } });
  cache.setSnapshot('vm-1', v2);
  t.equal(cache.current('vm-1')?.byKind.clusters.get('a')?.any, served?.byKind.clusters.get('a')?.any, 'a encoded once');
});

t.test('watches per node: the current snapshot at once, then each new one, until cancelled', async (t) => {
  const cache = createSnapshotCache();
  const v1 = snapshotOf({ clusters: { a: '5' }, endpoints: { a: [1] } });
  const v2 = snapshotOf({ clusters: { a: '6' }, endpoints: { a: [1] } });
  const early = watcher();
  cache.watch('vm-1', early.watch);
  t.same(early.seen, [], 'no snapshot yet: nothing told');
  const other = watcher();
  cache.watch('vm-2', other.watch);
  cache.setSnapshot('vm-1', v1);
  t.same(early.seen, [v1.version], 'told the new snapshot');
  t.same(other.seen, [], "another node's watch is not told");
  const late = watcher();
  const cancel = cache.watch('vm-1', late.watch);
  t.same(late.seen, [v1.version], 'a new watch is told the current snapshot at once');
  cache.setSnapshot('vm-1', v1);
  t.same(early.seen, [v1.version], 'no-op: nobody told');
  cancel();
  cache.setSnapshot('vm-1', v2);
  t.same(early.seen, [v1.version, v2.version]);
  t.same(late.seen, [v1.version], 'cancelled: not told');
});

t.test("acked(node) is what any live stream of the node acknowledged, the newest stream's version first", async (t) => {
  const cache = createSnapshotCache();
  t.equal(cache.acked('vm-1'), NOTHING_ACKED, 'no stream: nothing acknowledged');
  const old = watcher(ackedOf('a', 'v-old'));
  const cancelOld = cache.watch('vm-1', old.watch);
  t.same(cache.acked('vm-1').clusters.get('a'), 'v-old');
  const fresh = watcher();
  const cancelFresh = cache.watch('vm-1', fresh.watch);
  t.same(
    cache.acked('vm-1').clusters.get('a'),
    'v-old',
    "a new stream (hot restart) that acknowledged nothing yet: the old epoch's stream still serves what it accepted",
  );
  const newer = watcher(ackedOf('a', 'v-new'));
  const cancelNewer = cache.watch('vm-1', newer.watch);
  t.same(cache.acked('vm-1').clusters.get('a'), 'v-new', "the newest stream's version wins");
  t.equal(cache.acked('vm-2'), NOTHING_ACKED, 'another node: nothing');
  cancelNewer();
  cancelFresh();
  t.same(cache.acked('vm-1').clusters.get('a'), 'v-old', 'the newer ones gone: the remaining stream answers');
  cancelOld();
  t.equal(cache.acked('vm-1'), NOTHING_ACKED, 'a closed stream (an Envoy that exited) no longer counts');
});
