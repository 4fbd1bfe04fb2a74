/**
 * The pure NACK rollback: the effective set from (received, last accepted,
 * rolled back), what a NACK rolls back, and that nothing loops: a rolled-back
 * resource stays so until a newer version arrives, and a second NACK after a
 * rollback finds nothing left to roll back.
 */
import t from 'tap';
import {
  accepted,
  changedSinceAccepted,
  effectivePolicy,
  failClosedAuthorization,
  policyKey,
  type RolledBackSet,
  rollBack,
} from '../../../agent/dataplane/policy-rollback.js';
import type { StoredPolicy } from '../../../lib/policy/schema.js';

const resource =
  (kind: StoredPolicy['kind']) =>
  (version: number, revision: number): StoredPolicy => ({ kind, name: 'api', version, revision, source: { v: version } });
const tp = resource('TrafficPolicy');
const authz = resource('AuthorizationPolicy');
const versions = (rs: readonly StoredPolicy[]) => rs.map((r) => `${policyKey(r)}@${r.version}`);
const none: RolledBackSet = new Map();

t.test('nothing rolled back: the received set as is', async (t) => {
  const received = [tp(2, 5), authz(1, 3)];
  const e = effectivePolicy(received, new Map(), none);
  t.same(versions(e.resources), ['TrafficPolicy/api@2', 'AuthorizationPolicy/api@1']);
  t.equal(e.rolledBack.size, 0);
});

t.test('a NACK rolls back only what changed since the last fully acknowledged snapshot', async (t) => {
  const lastAccepted = accepted(new Map(), [tp(1, 2), authz(1, 3)]);
  const built = [tp(2, 5), authz(1, 3)];
  t.same(versions(changedSinceAccepted(built, lastAccepted)), ['TrafficPolicy/api@2']);
  const rb = rollBack({ effective: built, lastAccepted, rolledBack: none, detail: 'bad cluster', at: 10 });
  t.same(rb?.get('TrafficPolicy/api'), { version: 2, revision: 5, detail: 'bad cluster', at: 10, restored: 1 });
  t.notOk(rb?.has('AuthorizationPolicy/api'), 'the unchanged resource keeps its version');
  t.equal(
    rollBack({ effective: built, lastAccepted, rolledBack: rb ?? none, detail: 'LDS too', at: 10 }),
    undefined,
    'a second NACK of the same snapshot (another xDS type) adds nothing and keeps the first detail',
  );

  const after = effectivePolicy(built, lastAccepted, rb ?? none);
  t.same(versions(after.resources), ['TrafficPolicy/api@1', 'AuthorizationPolicy/api@1'], 'the last accepted version is built instead');
  t.same(after.resources[0]?.source, { v: 1 }, 'with its own document');

  t.equal(
    rollBack({ effective: after.resources, lastAccepted, rolledBack: after.rolledBack, detail: 'again', at: 11 }),
    undefined,
    'a second NACK after the rollback: nothing changed since the accepted set, nothing to roll back (no loop)',
  );
});

t.test('a resource never accepted is left out; a new resource arriving later is built again', async (t) => {
  const built = [tp(1, 1)];
  const rb = rollBack({ effective: built, lastAccepted: new Map(), rolledBack: none, detail: 'x', at: 1 });
  t.same(rb?.get('TrafficPolicy/api'), { version: 1, revision: 1, detail: 'x', at: 1 }, 'no restored version');
  const e = effectivePolicy(built, new Map(), rb ?? none);
  t.same(e.resources, [], 'left out');
  t.equal(e.rolledBack.size, 1, 'and still rolled back');
});

t.test('stays rolled back until a newer version arrives; then the rollback is dropped', async (t) => {
  const lastAccepted = accepted(new Map(), [tp(1, 2)]);
  const rb = rollBack({ effective: [tp(2, 5)], lastAccepted, rolledBack: none, detail: 'd', at: 1 }) ?? none;
  // Another resource changed (new mesh revision); this one is unchanged: still rolled back.
  const same = effectivePolicy([tp(2, 5), authz(1, 6)], lastAccepted, rb);
  t.same(versions(same.resources), ['TrafficPolicy/api@1', 'AuthorizationPolicy/api@1']);
  const newer = effectivePolicy([tp(3, 7)], lastAccepted, rb);
  t.same(versions(newer.resources), ['TrafficPolicy/api@3'], 'version 3 is built');
  t.equal(newer.rolledBack.size, 0, 'the rollback ends');
  const gone = effectivePolicy([authz(1, 6)], lastAccepted, rb);
  t.equal(gone.rolledBack.size, 0, 'a resource deleted at the source ends its rollback too');
});

t.test('accepted: merges per resource and keeps the same map when nothing changes', async (t) => {
  const a = accepted(new Map(), [tp(1, 2)]);
  t.equal(accepted(a, [tp(1, 2)]), a, 'unchanged');
  const b = accepted(a, [authz(1, 3)]);
  t.same(
    [...b.values()].map((r) => policyKey(r)),
    ['TrafficPolicy/api', 'AuthorizationPolicy/api'],
    'a resource not in the new snapshot keeps its last accepted version',
  );
});

t.test(
  'an AuthorizationPolicy or ServiceIdentity never accepted is kept, not dropped (fail closed); a TrafficPolicy is dropped',
  async (t) => {
    const built = [tp(1, 1), authz(1, 1), resource('ServiceIdentity')(1, 1)];
    const rb = rollBack({ effective: built, lastAccepted: new Map(), rolledBack: none, detail: 'bad', at: 1 });
    t.equal(rb?.size, 3, 'all three are rolled back');
    const e = effectivePolicy(built, new Map(), rb ?? none);
    t.same(versions(e.resources), ['AuthorizationPolicy/api@1', 'ServiceIdentity/api@1'], 'dropping these would let more peers in');
    t.equal(
      rollBack({ effective: e.resources, lastAccepted: new Map(), rolledBack: e.rolledBack, detail: 'bad', at: 2 }),
      undefined,
      'no loop',
    );
  },
);

t.test('an AuthorizationPolicy the agent cannot parse denies all at its target (fail closed); other kinds have no stand-in', async (t) => {
  const broken = (kind: StoredPolicy['kind'], spec: unknown): StoredPolicy => ({
    kind,
    name: 'x',
    version: 1,
    revision: 1,
    source: { apiVersion: 'mesh.v1', kind, metadata: { name: 'x' }, spec },
  });
  t.same(failClosedAuthorization(broken('AuthorizationPolicy', { target: { service: 'api' }, defaultAction: 'maybe' })), {
    apiVersion: 'mesh.v1',
    kind: 'AuthorizationPolicy',
    name: 'x',
    spec: { target: { service: 'api' }, defaultAction: 'deny', rules: [] },
  });
  t.equal(failClosedAuthorization(broken('AuthorizationPolicy', { target: 'api' })), undefined, 'no readable target: nothing to deny');
  t.equal(failClosedAuthorization(broken('RateLimit', { target: { service: 'api' } })), undefined);
});
