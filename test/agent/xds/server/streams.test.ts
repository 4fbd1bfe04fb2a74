/**
 * The SotW and delta stream state machines against the protocol rules of
 * xds-protocol.md, driven by hand-made requests (the real-Envoy tests are in
 * test/integration/xds-*.test.ts).
 */
import t from 'tap';
import { DeltaStream } from '../../../../agent/xds/server/delta-stream.js';
import { SotwStream } from '../../../../agent/xds/server/sotw-stream.js';
import { TypeUrl } from '../../../../lib/envoy/type-urls.js';
import { deltaReq, lastDelta, lastSotw, recorder, served, sotwReq } from '../fixtures/streams.js';

t.test('SotW: answers once, holds ACKs, ignores stale nonces, records NACKs and never re-sends a rejected version', async (t) => {
  const r = recorder();
  const s = new SotwStream(1, r.hooks);
  let snap = served({ clusters: { a: '5' }, endpoints: { a: [1] } });
  s.update(snap);
  s.request(sotwReq(TypeUrl.Cluster));
  t.equal(r.sent.length, 1, 'first CDS request answered');
  const first = lastSotw(r.sent);
  t.equal(first.resources.length, 1);
  s.request(sotwReq(TypeUrl.Cluster, first.nonce));
  t.equal(r.sent.length, 1, 'ACK with nothing new: held open');
  t.same(r.acks, [`CDS:${first.versionInfo}`]);
  t.equal(s.status().types[0]?.ackedVersion, first.versionInfo);

  // A change is pushed at once on the open request.
  snap = served({ clusters: { a: '5', b: '5' }, endpoints: { a: [1], b: [2] } });
  s.update(snap);
  t.equal(r.sent.length, 2);
  const second = lastSotw(r.sent);
  t.equal(second.resources.length, 2, 'LDS/CDS carry the full set');
  // A request with the old nonce is stale: ignored, even with a NACK in it.
  s.request(sotwReq(TypeUrl.Cluster, first.nonce, [], 'late complaint'));
  t.equal(r.nacks.length, 0, 'stale NACK ignored');
  // NACK of the latest.
  s.request(sotwReq(TypeUrl.Cluster, second.nonce, [], 'bad cluster b'));
  t.equal(r.nacks.length, 1);
  t.equal(r.nacks[0]?.detail, 'bad cluster b');
  t.equal(r.nacks[0]?.version, second.versionInfo);
  t.equal(r.sent.length, 2, 'the rejected version is not sent again');
  s.update(snap);
  t.equal(r.sent.length, 2, 'same snapshot again: still not re-sent');
  t.equal(s.status().types[0]?.lastNack?.detail, 'bad cluster b');
  // The next different content goes out.
  snap = served({ clusters: { a: '5', b: '6' }, endpoints: { a: [1], b: [2] } });
  s.update(snap);
  t.equal(r.sent.length, 3, 'a new version after the NACK is sent');
});

t.test(
  'SotW EDS: only requested names, only the changed ones; missing names are sent once they exist; a changed cluster re-sends all endpoints',
  async (t) => {
    const r = recorder();
    const s = new SotwStream(1, r.hooks);
    let snap = served({ clusters: { a: '5' }, endpoints: { a: [1] } });
    s.update(snap);
    s.request(sotwReq(TypeUrl.Cluster));
    const cds = lastSotw(r.sent);
    s.request(sotwReq(TypeUrl.Cluster, cds.nonce));
    s.request(sotwReq(TypeUrl.ClusterLoadAssignment, '', ['a', 'z']));
    const eds = lastSotw(r.sent);
    t.equal(eds.resources.length, 1, 'z does not exist yet; a is sent');
    s.request(sotwReq(TypeUrl.ClusterLoadAssignment, eds.nonce, ['a', 'z']));
    t.equal(r.sent.length, 2, 'held');
    snap = served({ clusters: { a: '5' }, endpoints: { a: [1], z: [9] } });
    s.update(snap);
    t.equal(r.sent.length, 3);
    t.equal(lastSotw(r.sent).resources.length, 1, 'z arrives once it exists; a, unchanged, is not sent again (not deleted either)');
    s.request(sotwReq(TypeUrl.ClusterLoadAssignment, lastSotw(r.sent).nonce, ['a', 'z']));
    const acked = () => [...s.acked().endpoints.keys()].sort();
    t.same(acked(), ['a', 'z'], 'the ACK adds z to what Envoy holds');
    // One endpoint changes: one ClusterLoadAssignment on the wire.
    snap = served({ clusters: { a: '5' }, endpoints: { a: [1], z: [9, 10] } });
    s.update(snap);
    const one = lastSotw(r.sent);
    t.equal(one.resources.length, 1, 'only the changed z');
    s.request(sotwReq(TypeUrl.ClusterLoadAssignment, one.nonce, ['a', 'z']));
    t.same(acked(), ['a', 'z']);
    t.equal(s.acked().endpoints.get('z'), snap.byKind.endpoints.get('z')?.version, 'z acknowledged at its new version');
    t.equal(s.acked().endpoints.get('a'), snap.byKind.endpoints.get('a')?.version, 'a still held');
    // Envoy stops asking for z: it leaves the acknowledged set with the next ACK.
    s.request(sotwReq(TypeUrl.ClusterLoadAssignment, one.nonce, ['a']));
    const dropped = lastSotw(r.sent);
    t.equal(dropped.resources.length, 0, 'nothing new to send for a');
    s.request(sotwReq(TypeUrl.ClusterLoadAssignment, dropped.nonce, ['a']));
    t.same(acked(), ['a']);
    s.request(sotwReq(TypeUrl.ClusterLoadAssignment, lastSotw(r.sent).nonce, ['a', 'z']));
    t.equal(lastSotw(r.sent).resources.length, 1, 'asked again: z is sent again');
    s.request(sotwReq(TypeUrl.ClusterLoadAssignment, lastSotw(r.sent).nonce, ['a', 'z']));
    // Cluster a changes (timeout), endpoints do not: EDS is re-sent anyway after CDS.
    const before = r.sent.length;
    snap = served({ clusters: { a: '7' }, endpoints: { a: [1], z: [9, 10] } });
    s.update(snap);
    t.same(
      r.sent.slice(before).map((x) => x.type),
      ['CDS', 'EDS'],
      'CDS then the unchanged endpoints again',
    );
    t.equal(lastSotw(r.sent).resources.length, 2, 'all of them');
  },
);

t.test('SotW: unknown type URLs are refused; node id is recorded', async (t) => {
  const r = recorder();
  const s = new SotwStream(7, r.hooks);
  t.equal(s.request(sotwReq('type.googleapis.com/envoy.Nope')), false);
  t.equal(s.nodeId, 'vm-1');
  t.same(r.nodes, ['vm-1'], 'the server is told the node once, to watch its snapshots');
  t.equal(s.request(sotwReq(TypeUrl.Listener)), true);
  t.same(r.nodes, ['vm-1'], 'the same node again: not told twice');
  t.equal(r.sent.length, 0, 'no snapshot yet: nothing to answer');
  s.update(served({}));
  t.equal(r.sent.length, 1, 'the first snapshot answers the open request (empty LDS so Envoy finishes init)');
  t.equal(s.status().types[0]?.pending, 0);
});

t.test('delta: only changed resources, explicit removals, initial versions, NACK not re-sent', async (t) => {
  const r = recorder();
  const s = new DeltaStream(2, r.hooks);
  let snap = served({ clusters: { a: '5', b: '5' }, endpoints: { a: [1], b: [2] } });
  s.update(snap);
  s.request(deltaReq(TypeUrl.Cluster));
  let res = lastDelta(r.sent);
  t.same(
    res.resources.map((x) => x.name),
    ['a', 'b'],
  );
  s.request(deltaReq(TypeUrl.Cluster, { nonce: res.nonce }));
  t.equal(r.sent.length, 1, 'ACK: nothing to send');
  t.equal(r.acks.length, 1);
  snap = served({ clusters: { a: '5' }, endpoints: { a: [1] } });
  s.update(snap);
  res = lastDelta(r.sent);
  t.same(res.resources, [], 'nothing changed in a');
  t.same(res.removed, ['b'], 'b removed explicitly');

  // EDS subscription by name.
  s.request(deltaReq(TypeUrl.ClusterLoadAssignment, { sub: ['a'] }));
  res = lastDelta(r.sent);
  t.same(
    res.resources.map((x) => x.name),
    ['a'],
  );
  const edsVersion = res.resources[0]?.version;
  // NACK: recorded with the resources, not re-sent.
  s.request(deltaReq(TypeUrl.ClusterLoadAssignment, { nonce: res.nonce, error: 'bad endpoints' }));
  t.equal(r.nacks[0]?.detail, 'bad endpoints');
  t.same(r.nacks[0]?.resources, ['a']);
  const count = r.sent.length;
  s.update(snap);
  t.equal(r.sent.length, count, 'rejected resource not re-sent');
  // Unknown nonce: stale.
  s.request(deltaReq(TypeUrl.ClusterLoadAssignment, { nonce: '999', error: 'old' }));
  t.equal(r.nacks.length, 1);

  // Reconnect: a new stream with initial versions sends only what differs.
  const r2 = recorder();
  const s2 = new DeltaStream(3, r2.hooks);
  s2.update(snap);
  s2.request(deltaReq(TypeUrl.ClusterLoadAssignment, { sub: ['a'], initial: { a: edsVersion ?? '' } }));
  res = lastDelta(r2.sent);
  t.same(res.resources, [], 'Envoy already has a: first answer is empty');
  s2.request(deltaReq(TypeUrl.ClusterLoadAssignment, { nonce: res.nonce }));
  t.equal(r2.sent.length, 1);
  // Unsubscribe forgets the name.
  s2.request(deltaReq(TypeUrl.ClusterLoadAssignment, { unsub: ['a'] }));
  t.same(s2.status().types[0]?.subscribed, []);
});

t.test('delta: a modified cluster re-sends its endpoints and the secrets', async (t) => {
  const r = recorder();
  const s = new DeltaStream(4, r.hooks);
  let snap = served({ clusters: { a: '5' }, endpoints: { a: [1] }, secrets: ['ROOTCA'] });
  s.update(snap);
  s.request(deltaReq(TypeUrl.Cluster));
  s.request(deltaReq(TypeUrl.ClusterLoadAssignment, { sub: ['a'] }));
  s.request(deltaReq(TypeUrl.Secret, { sub: ['ROOTCA'] }));
  t.same(
    r.sent.map((x) => x.type),
    ['CDS', 'EDS', 'SDS'],
  );
  snap = served({ clusters: { a: '9' }, endpoints: { a: [1] }, secrets: ['ROOTCA'] });
  s.update(snap);
  t.same(
    r.sent.slice(3).map((x) => x.type),
    ['CDS', 'EDS', 'SDS'],
    'unchanged endpoints and secrets follow the changed cluster',
  );
  t.equal(s.status().types.find((x) => x.type === 'CDS')?.pending, 2, 'two CDS responses not yet acknowledged');
});

t.test('delta: unacknowledged responses are remembered up to a bound', async (t) => {
  const r = recorder();
  const s = new DeltaStream(5, r.hooks);
  s.update(served({ clusters: { a: '1' } }));
  s.request(deltaReq(TypeUrl.Cluster));
  for (let i = 2; i < 80; i++) s.update(served({ clusters: { a: String(i) } }));
  t.equal(s.status().types[0]?.pending, 64);
  const last = lastDelta(r.sent);
  s.request(deltaReq(TypeUrl.Cluster, { nonce: last.nonce }));
  t.equal(s.status().types[0]?.pending, 63, 'the ACK of the latest still counts');
  t.equal(r.acks.length, 1);
});
