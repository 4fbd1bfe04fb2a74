/**
 * Per-resource acknowledgements of the SotW and delta streams: what Envoy has
 * acknowledged, by kind and name, with the resource version. Only an ACK
 * fills it: not a response on its own, not a NACK, not a stale nonce; a new
 * stream (reconnect) starts with nothing until it acknowledges.
 */
import t from 'tap';
import type { AckedResources } from '../../../../agent/xds/cache/acked-resources.js';
import type { ServedSnapshot } from '../../../../agent/xds/cache/served-snapshot.js';
import { DeltaStream } from '../../../../agent/xds/server/delta-stream.js';
import { SotwStream } from '../../../../agent/xds/server/sotw-stream.js';
import { TypeUrl } from '../../../../lib/envoy/type-urls.js';
import { deltaReq, lastDelta, lastSotw, recorder, served, sotwReq } from '../fixtures/streams.js';

const entries = (m: ReadonlyMap<string, string>) => Object.fromEntries(m);
const versionsOf = (snap: ServedSnapshot, kind: 'clusters' | 'endpoints') => entries(snap.snapshot.versions[kind]);
const empty = (acked: AckedResources) => Object.values(acked).every((m) => m.size === 0);

t.test('SotW: the sent set becomes the acked set on ACK; NACK and stale nonces change nothing; a new stream starts empty', async (t) => {
  const r = recorder();
  const s = new SotwStream(1, r.hooks);
  const v1 = served({ clusters: { a: '5', b: '5' } });
  s.update(v1);
  s.request(sotwReq(TypeUrl.Cluster));
  t.ok(empty(s.acked()), 'sent, not yet acknowledged: nothing acked');
  const first = lastSotw(r.sent);
  s.request(sotwReq(TypeUrl.Cluster, first.nonce));
  t.same(entries(s.acked().clusters), versionsOf(v1, 'clusters'), 'ACK: a and b at their versions');

  // b changes, a is removed: Envoy rejects it.
  const v2 = served({ clusters: { b: '6' } });
  s.update(v2);
  const second = lastSotw(r.sent);
  s.request(sotwReq(TypeUrl.Cluster, first.nonce));
  t.same(entries(s.acked().clusters), versionsOf(v1, 'clusters'), 'a stale nonce (an old ACK) changes nothing');
  s.request(sotwReq(TypeUrl.Cluster, second.nonce, [], 'bad b'));
  t.same(entries(s.acked().clusters), versionsOf(v1, 'clusters'), 'NACK: still the previous versions');
  t.equal(r.nacks.length, 1);

  const v3 = served({ clusters: { b: '7' } });
  s.update(v3);
  s.request(sotwReq(TypeUrl.Cluster, lastSotw(r.sent).nonce));
  t.same(entries(s.acked().clusters), versionsOf(v3, 'clusters'), 'ACK of the full set: b at its new version, a gone');

  // EDS carries only the requested names: the acked set is what was sent for them.
  const v4 = served({ clusters: { b: '7' }, endpoints: { b: [1], other: [2] } });
  s.update(v4);
  s.request(sotwReq(TypeUrl.ClusterLoadAssignment, '', ['b', 'missing']));
  s.request(sotwReq(TypeUrl.ClusterLoadAssignment, lastSotw(r.sent).nonce, ['b', 'missing']));
  t.same(entries(s.acked().endpoints), { b: v4.snapshot.versions.endpoints.get('b') }, 'EDS: the requested name that exists');

  // Reconnect: a new stream knows nothing until its Envoy acknowledges.
  const r2 = recorder();
  const s2 = new SotwStream(2, r2.hooks);
  s2.update(v4);
  s2.request(sotwReq(TypeUrl.Cluster));
  t.ok(empty(s2.acked()), 'new stream: nothing acked before its first ACK');
  s2.request(sotwReq(TypeUrl.Cluster, lastSotw(r2.sent).nonce));
  t.same(entries(s2.acked().clusters), versionsOf(v4, 'clusters'), 'then its ACK fills it');
});

t.test('delta: an ACK gives the response its versions and takes its removals out; NACK and unknown nonces change nothing', async (t) => {
  const r = recorder();
  const s = new DeltaStream(3, r.hooks);
  const v1 = served({ clusters: { a: '5', b: '5' }, endpoints: { a: [1], b: [2] } });
  s.update(v1);
  s.request(deltaReq(TypeUrl.Cluster));
  t.ok(empty(s.acked()), 'sent, not yet acknowledged');
  s.request(deltaReq(TypeUrl.Cluster, { nonce: lastDelta(r.sent).nonce }));
  t.same(entries(s.acked().clusters), versionsOf(v1, 'clusters'), 'ACK: a and b');

  // a changes, b goes: one response with a and removed b.
  const v2 = served({ clusters: { a: '6' }, endpoints: { a: [1] } });
  s.update(v2);
  const change = lastDelta(r.sent);
  t.same(change.removed, ['b']);
  t.same(entries(s.acked().clusters), versionsOf(v1, 'clusters'), 'not acknowledged yet: the previous set');
  s.request(deltaReq(TypeUrl.Cluster, { nonce: '999' }));
  t.same(entries(s.acked().clusters), versionsOf(v1, 'clusters'), 'an unknown (stale) nonce changes nothing');
  s.request(deltaReq(TypeUrl.Cluster, { nonce: change.nonce }));
  t.same(entries(s.acked().clusters), versionsOf(v2, 'clusters'), 'ACK: a at its new version, b removed');

  // A NACK leaves the acked set.
  const v3 = served({ clusters: { a: '7' }, endpoints: { a: [1] } });
  s.update(v3);
  s.request(deltaReq(TypeUrl.Cluster, { nonce: lastDelta(r.sent).nonce, error: 'bad a' }));
  t.same(entries(s.acked().clusters), versionsOf(v2, 'clusters'), 'NACK: still the acknowledged version');
  t.same(r.nacks[0]?.resources, ['a']);

  // EDS by subscription; an unsubscribed name leaves the acked set at once.
  s.request(deltaReq(TypeUrl.ClusterLoadAssignment, { sub: ['a'] }));
  s.request(deltaReq(TypeUrl.ClusterLoadAssignment, { nonce: lastDelta(r.sent).nonce }));
  t.same(entries(s.acked().endpoints), versionsOf(v3, 'endpoints'));
  s.request(deltaReq(TypeUrl.ClusterLoadAssignment, { unsub: ['a'] }));
  t.same(entries(s.acked().endpoints), {}, 'unsubscribed: no longer acknowledged');
});

t.test('delta reconnect: empty until the first ACK, which also acknowledges the initial versions Envoy kept', async (t) => {
  const v1 = served({ clusters: { a: '5', b: '5' } });
  const held = entries(v1.snapshot.versions.clusters);
  const r = recorder();
  const s = new DeltaStream(4, r.hooks);
  s.update(served({ clusters: { a: '5', b: '6', c: '5' } }));
  // Envoy reconnects holding a and b of v1: b changed since, c is new, a is unchanged.
  s.request(deltaReq(TypeUrl.Cluster, { initial: held }));
  const first = lastDelta(r.sent);
  t.same(
    first.resources.map((x) => x.name),
    ['b', 'c'],
    'only what differs is sent',
  );
  t.ok(empty(s.acked()), 'initial versions are not acknowledgements');
  s.request(deltaReq(TypeUrl.Cluster, { nonce: first.nonce }));
  const now = s.acked().clusters;
  t.same([...now.keys()].sort(), ['a', 'b', 'c'], 'the ACK covers the unchanged a too');
  t.equal(now.get('a'), held.a, 'a at the version Envoy kept');
  t.equal(now.get('b'), first.resources.find((x) => x.name === 'b')?.version, 'b at the version sent');
});

t.test('the ack hook runs after the acknowledged set changed', async (t) => {
  const r = recorder();
  const seen: number[] = [];
  const s: SotwStream = new SotwStream(5, {
    ...r.hooks,
    onAck: () => {
      seen.push(s.acked().clusters.size);
    },
  });
  s.update(served({ clusters: { a: '5' } }));
  s.request(sotwReq(TypeUrl.Cluster));
  s.request(sotwReq(TypeUrl.Cluster, lastSotw(r.sent).nonce));
  t.same(seen, [1], 'the listener read the new set');
});
