/** The Admin API's view of a node's sync: fields from the latest report, revoked nodes without a state, the detail. */
import t from 'tap';
import { NodeStatusBook } from '../../../controlplane/status/node-status-book.js';
import { nodeStatusDetail, nodeSyncFields, unknownNode } from '../../../controlplane/status/node-sync-view.js';
import type { NodeStatusReportWire } from '../../../lib/proto/node-status.js';
import { FakeClock } from '../../fakes/clock.js';
import { report } from '../../support/node-report.js';

t.test('fields, earliest SVID expiry, revoked nodes, an unknown name', async (t) => {
  const clock = new FakeClock();
  const book = new NodeStatusBook();
  const source = { book, expectedPolicyRevision: () => 4, now: () => clock.now(), staleAfterMs: 30_000, startedAt: clock.now() };
  const r: NodeStatusReportWire = report({
    node_svid_not_after_ms: 5_000,
    workloads: [
      { name: 'web', spiffe_id: 's/web', health: 'passing', data_plane: 'serving', svid_not_after_ms: 3_000, svid_state: 'valid' },
      { name: 'api', spiffe_id: 's/api', health: 'passing', data_plane: 'serving', svid_not_after_ms: 0, svid_state: 'pending' },
    ],
  });
  book.record('vm1', r, clock.now());
  t.same(nodeSyncFields({ name: 'vm1', status: 'active' }, source), {
    sync_state: 'SYNCED',
    sync_reason: '',
    agent_version: '0.1.0',
    envoy_version: '1.40.0',
    earliest_svid_expiry_ms: 3_000,
    last_report_at_ms: clock.now(),
  });
  t.match(nodeSyncFields({ name: 'vm1', status: 'revoked' }, source), { sync_state: '', sync_reason: 'node revoked' });
  t.match(nodeSyncFields({ name: 'vm2', status: 'active' }, source), { sync_state: 'UNKNOWN', agent_version: '' });
  t.match(unknownNode('nope'), { code: 'MESH_E_NODE_UNKNOWN', message: /no node named "nope"/ });
  const row = { name: 'vm1' };
  t.match(nodeStatusDetail(row, source), {
    report: { agent_version: '0.1.0' },
    expected_policy_revision: 4,
    stale_after_ms: 30_000,
  });
  book.forget('vm1');
  t.notOk(nodeStatusDetail(row, source).report, 'a forgotten node has no report');
});

t.test('a report with too many entries is refused, naming the field', async (t) => {
  const book = new NodeStatusBook();
  const many = Array.from({ length: 4097 }, () => ({ kind: 'K', name: 'n', version: 1, state: 'invalid', reason: '' }));
  t.throws(() => book.record('vm1', report({ policy_rejections: many }), 0), { code: 'MESH_E_USAGE', message: /policy_rejections/ });
  t.equal(book.latest('vm1'), undefined);
});
