/**
 * The pure sync-state derivation, time from the fake clock: UNKNOWN before a
 * first report is due, STALE once staleAfter passes without one, NACK for a
 * pending NACK or a refused policy, STALE for Envoy behind (not connected, a
 * type not acknowledged, the policy revision behind), SYNCED otherwise.
 */
import t from 'tap';
import { deriveSyncState, type SyncInput } from '../../../controlplane/status/sync-state.js';
import type { NodeStatusReportWire } from '../../../lib/proto/node-status.js';
import { FakeClock } from '../../fakes/clock.js';
import { report, xdsType as type } from '../../support/node-report.js';

const STALE_AFTER = 30_000;

function world() {
  const clock = new FakeClock();
  const startedAt = clock.now();
  const at = (r: NodeStatusReportWire, receivedAt = clock.now()) => ({ report: r, receivedAt });
  const derive = (input: Partial<SyncInput> = {}) =>
    deriveSyncState({ now: clock.now(), staleAfterMs: STALE_AFTER, startedAt, expectedPolicyRevision: 4, ...input });
  return { clock, at, derive };
}

t.test('no report: UNKNOWN until staleAfter after the start, then STALE', async (t) => {
  const { clock, derive } = world();
  t.equal(derive().state, 'UNKNOWN');
  clock.advance(STALE_AFTER - 1);
  t.equal(derive().state, 'UNKNOWN', 'still within staleAfter of the start');
  clock.advance(2);
  const v = derive();
  t.equal(v.state, 'STALE');
  t.equal(v.reason, 'no status report in 30s (staleAfter 30s)');
});

t.test('a healthy report is SYNCED until staleAfter passes without another', async (t) => {
  const { clock, at, derive } = world();
  const latest = at(report());
  t.same(derive({ latest }), { state: 'SYNCED', reason: '' });
  clock.advance(STALE_AFTER);
  t.equal(derive({ latest }).state, 'SYNCED', 'exactly staleAfter old is still fresh');
  clock.advance(15_000);
  t.same(derive({ latest }), { state: 'STALE', reason: 'last report 45s ago (staleAfter 30s)' });
  t.equal(derive({ latest: at(report()) }).state, 'SYNCED', 'a new report makes it fresh again');
});

t.test('a pending NACK is NACK; a NACK answered by a later ACK is not', async (t) => {
  const { at, derive } = world();
  const nack = { version: '0123456789abcdef', detail: 'Proto constraint validation failed:\n  bad   regex', at_ms: 5 };
  const pending = report({ xds: [type('CDS'), type('RDS', { in_sync: false, last_nack: nack, nack_pending: true })] });
  t.same(derive({ latest: at(pending) }), {
    state: 'NACK',
    reason: 'Envoy rejected RDS version 0123456789ab: Proto constraint validation failed: bad regex',
  });
  const answered = report({ xds: [type('CDS'), type('RDS', { last_nack: nack, nack_pending: false })] });
  t.equal(derive({ latest: at(answered) }).state, 'SYNCED', 'Envoy accepted a newer version of RDS since');
});

t.test('a rolled-back, rejected or invalid policy resource is NACK', async (t) => {
  const { at, derive } = world();
  for (const state of ['rolled-back', 'rejected', 'invalid']) {
    const r = report({
      policy_rejections: [{ kind: 'TrafficRoute', name: 'api', version: 2, state, reason: 'Envoy rejected the configuration' }],
    });
    t.same(derive({ latest: at(r) }), {
      state: 'NACK',
      reason: `policy TrafficRoute/api version 2 ${state}: Envoy rejected the configuration`,
    });
  }
});

t.test('a stale report wins over a NACK in it (the node may have fixed it since)', async (t) => {
  const { clock, at, derive } = world();
  const latest = at(report({ policy_rejections: [{ kind: 'TrafficRoute', name: 'api', version: 2, state: 'rolled-back', reason: '' }] }));
  clock.advance(STALE_AFTER + 1);
  t.equal(derive({ latest }).state, 'STALE');
});

t.test('Envoy behind the agent is STALE, naming why', async (t) => {
  const { at, derive } = world();
  t.same(derive({ latest: at(report({ envoy_connected: false, envoy_state: 'backoff' })) }), {
    state: 'STALE',
    reason: 'Envoy is not connected to the agent (Envoy backoff)',
  });
  t.same(derive({ latest: at(report({ xds: [type('CDS', { in_sync: false }), type('LDS', { in_sync: false }), type('EDS')] })) }), {
    state: 'STALE',
    reason: 'Envoy has not acknowledged the latest CDS, LDS yet',
  });
  t.same(derive({ latest: at(report({ snapshot_error: 'RDS route "x" missing' })) }), {
    state: 'STALE',
    reason: 'the agent refused its latest snapshot: RDS route "x" missing',
  });
});

t.test('the policy revision: behind (or ahead of) what the control plane sent is STALE; no open watch is not judged', async (t) => {
  const { at, derive } = world();
  const latest = at(report({ policy_revision: 3 }));
  t.same(derive({ latest, expectedPolicyRevision: 5 }), {
    state: 'STALE',
    reason: 'the node holds policy revision 3; the control plane sent it revision 5',
  });
  t.equal(derive({ latest, expectedPolicyRevision: 2 }).state, 'STALE', 'ahead: a control plane restored from a backup');
  t.equal(derive({ latest, expectedPolicyRevision: 3 }).state, 'SYNCED');
  t.equal(deriveSyncState({ latest, now: latest.receivedAt, staleAfterMs: STALE_AFTER, startedAt: 0 }).state, 'SYNCED', 'no watch');
});
