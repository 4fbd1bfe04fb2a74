/**
 * The Policy.Watch fan-out with fake streams and the in-memory store: resume
 * (same revision: nothing; other revision: the whole set at the current
 * revision), one encode per interest group and revision, only changed sets
 * sent, backpressure (a full stream gets only the newest set once drained),
 * and a revoked node's streams ended.
 */
import t from 'tap';
import { nodeRevokedError, PolicyFanout, type PolicySink, type PolicyUpdateMessage } from '../../../controlplane/policy/policy-fanout.js';
import type { MeshError } from '../../../lib/errors.js';
import { createLogger } from '../../../lib/logger.js';
import { MemoryPolicyStore } from '../../fakes/policy-store.js';
import { authorization, serviceIdentity, TD, trafficPolicy } from './policy-docs.js';

const quiet = createLogger({ sink: { write: () => {} } });

interface FakeSink extends PolicySink {
  received: PolicyUpdateMessage[];
  full: boolean;
  ended?: MeshError;
}

function sink(node: string): FakeSink {
  const s: FakeSink = {
    node,
    received: [],
    full: false,
    write(bytes) {
      s.received.push(JSON.parse(bytes.toString()) as PolicyUpdateMessage);
      return !s.full;
    },
    end(error) {
      s.ended = error;
    },
  };
  return s;
}

function setup(batchSize?: number) {
  const store = new MemoryPolicyStore(() => 1000);
  const encoded: number[] = [];
  const fanout = new PolicyFanout({
    store,
    logger: quiet,
    ...(batchSize === undefined ? {} : { batchSize }),
    encode: (m) => {
      encoded.push(m.revision);
      return Buffer.from(JSON.stringify(m));
    },
  });
  return { store, fanout, encoded };
}

const API = { services: ['api'], spiffeIds: [] };
const DB = { services: ['db'], spiffeIds: [] };
const names = (m: PolicyUpdateMessage | undefined) => m?.resources.map((r) => `${r.kind}/${r.name}`);

t.test('resume: the current revision gets nothing, any other the whole set at the current revision', async (t) => {
  const { store, fanout } = setup();
  store.apply([serviceIdentity('api-id', 'api'), trafficPolicy('db-tp', 'db')], 'test');
  store.apply([authorization('api-authz', { service: 'api' })], 'test');
  await fanout.settled();
  t.equal(store.revision(), 2);

  const current = sink('n1');
  fanout.subscribe(current, { revision: 2, interest: API });
  t.same(current.received, [], 'at the current revision: nothing until the next change');

  const older = sink('n2');
  fanout.subscribe(older, { revision: 1, interest: API });
  t.equal(older.received.length, 1);
  t.equal(older.received[0]?.revision, 2);
  t.same(names(older.received[0]), ['AuthorizationPolicy/api-authz', 'ServiceIdentity/api-id'], 'only what concerns api');
  const json = JSON.parse(older.received[0]?.resources[1]?.json ?? '{}') as { spec: { service: string } };
  t.equal(json.spec.service, 'api', 'the document travels as JSON');
  t.equal(older.received[0]?.resources[1]?.updated_by, 'test');

  const fresh = sink('n3');
  fanout.subscribe(fresh, { revision: 0, interest: DB });
  t.same(names(fresh.received[0]), ['TrafficPolicy/db-tp']);
});

t.test('a change reaches the streams whose set changed, encoded once per group', async (t) => {
  const { store, fanout, encoded } = setup(2);
  store.apply([serviceIdentity('api-id', 'api'), trafficPolicy('db-tp', 'db')], 'test');
  const apis = Array.from({ length: 5 }, (_, i) => sink(`api-${i}`));
  const dbs = Array.from({ length: 3 }, (_, i) => sink(`db-${i}`));
  for (const s of apis) fanout.subscribe(s, { revision: 1, interest: API });
  for (const s of dbs) fanout.subscribe(s, { revision: 1, interest: DB });
  t.same(encoded, [1, 1], 'one encode per group at subscription');
  t.same(fanout.stats(), { streams: 8, groups: 2, revision: 1 });

  store.apply([trafficPolicy('db-tp', 'db', '5s')], 'test');
  await fanout.settled();
  t.same(encoded, [1, 1, 2, 2], 'one encode per group for the new revision');
  for (const s of dbs)
    t.same(
      s.received.map((m) => m.revision),
      [2],
      `${s.node} got revision 2`,
    );
  for (const s of apis) t.same(s.received, [], `${s.node}: its set did not change`);

  // A later subscriber of the api group that holds revision 1 gets the set at revision 3.
  store.apply([authorization('api-authz', { service: 'api' })], 'test');
  await fanout.settled();
  for (const s of apis)
    t.same(
      s.received.map((m) => m.revision),
      [3],
    );
  for (const s of dbs)
    t.same(
      s.received.map((m) => m.revision),
      [2],
    );
});

t.test('a deleted resource is a change too', async (t) => {
  const { store, fanout } = setup();
  store.apply([serviceIdentity('api-id', 'api')], 'test');
  const s = sink('n1');
  fanout.subscribe(s, { revision: 0, interest: API });
  store.delete('ServiceIdentity', 'api-id', 'test');
  await fanout.settled();
  t.same(
    s.received.map((m) => [m.revision, m.resources.length]),
    [
      [1, 1],
      [2, 0],
    ],
  );
});

t.test('a full stream gets nothing more until it drains, then only the newest set', async (t) => {
  const { store, fanout } = setup();
  store.apply([serviceIdentity('api-id', 'api')], 'test');
  const s = sink('slow');
  s.full = true;
  const sub = fanout.subscribe(s, { revision: 0, interest: API });
  t.equal(s.received.length, 1, 'written, but the buffer is full now');
  store.apply([authorization('a1', { service: 'api' })], 'test');
  await fanout.settled();
  store.apply([authorization('a2', { service: 'api' })], 'test');
  await fanout.settled();
  t.equal(s.received.length, 1, 'nothing written while full');
  s.full = false;
  sub.drained();
  t.same(
    s.received.map((m) => m.revision),
    [1, 3],
    'revision 2 skipped: each update is the whole set',
  );
  sub.drained();
  t.equal(s.received.length, 3 - 1, 'a drain with nothing new writes nothing');
});

t.test('many streams are written in batches, yielding between them', async (t) => {
  const { store, fanout } = setup(100);
  const sinks = Array.from({ length: 1000 }, (_, i) => sink(`n${i}`));
  for (const s of sinks) fanout.subscribe(s, { revision: 0, interest: API });
  store.apply([serviceIdentity('api-id', 'api')], 'test');
  let turns = 0;
  const counting = setInterval(() => turns++, 0);
  await fanout.settled();
  clearInterval(counting);
  t.ok(
    sinks.every((s) => s.received.at(-1)?.revision === 1),
    'every stream has revision 1',
  );
  t.ok(sinks.slice(0, 100).every((s) => s.received.length === 1));
  t.ok(turns >= 1, `the event loop ran other work during the fan-out (${turns} timer turns)`);
});

t.test('a closed stream gets nothing; a revoked node has its streams ended', async (t) => {
  const { store, fanout } = setup();
  const a = sink('n1');
  const b = sink('n1');
  const c = sink('n2');
  const subA = fanout.subscribe(a, { revision: 0, interest: API });
  fanout.subscribe(b, { revision: 0, interest: API });
  fanout.subscribe(c, { revision: 0, interest: API });
  subA.close();
  t.equal(fanout.endNode('n1', nodeRevokedError('n1')), 1, 'the open stream of n1 ended');
  t.equal(b.ended?.code, 'MESH_E_NODE_REVOKED');
  t.equal(a.ended, undefined);
  store.apply([serviceIdentity('api-id', 'api')], 'test');
  await fanout.settled();
  t.same(a.received, []);
  t.same(b.received, []);
  t.equal(c.received.length, 1);
  t.same(fanout.stats().streams, 1);
});

t.test('a stream whose write throws is dropped, the others still get the set', async (t) => {
  const { store, fanout } = setup();
  const broken = sink('broken');
  broken.write = () => {
    throw new Error('stream destroyed');
  };
  const ok = sink('ok');
  fanout.subscribe(broken, { revision: 0, interest: API });
  fanout.subscribe(ok, { revision: 0, interest: API });
  store.apply([serviceIdentity('api-id', 'api')], 'test');
  await fanout.settled();
  t.equal(ok.received.length, 1, 'the healthy stream got revision 1');
  t.equal(fanout.stats().streams, 1);
});

t.test('revisionFor: the revision last sent to a node, the newer one while it is still to be written, none without a watch', async (t) => {
  const { store, fanout } = setup();
  store.apply([serviceIdentity('api-id', 'api'), trafficPolicy('db-tp', 'db')], 'test');
  t.equal(fanout.revisionFor('n1'), undefined, 'no watch');
  const current = sink('n1');
  const sub = fanout.subscribe(current, { revision: 1, interest: API });
  t.equal(fanout.revisionFor('n1'), 1, 'it held the current revision when it subscribed');

  store.apply([trafficPolicy('db-tp', 'db', '5s')], 'test');
  await fanout.settled();
  t.equal(store.revision(), 2);
  t.equal(fanout.revisionFor('n1'), 1, 'its set did not change: it keeps revision 1, and that is in sync');

  current.full = true;
  store.apply([authorization('api-authz', { service: 'api' })], 'test');
  await fanout.settled();
  t.equal(fanout.revisionFor('n1'), 3, 'written (its buffer is now full)');
  store.apply([serviceIdentity('api-id', 'api', [`${TD}/ns/other/sa/api`])], 'test');
  await fanout.settled();
  t.equal(current.received.at(-1)?.revision, 3, 'revision 4 is not written to a full stream');
  t.equal(fanout.revisionFor('n1'), 4, 'what it should hold: revision 4, still to be written');

  sub.close();
  t.equal(fanout.revisionFor('n1'), undefined, 'the watch closed');
});
