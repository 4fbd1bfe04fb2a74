/**
 * The agent's side of proxy sync status, pure: per-type sync of the served
 * snapshot against what Envoy acknowledged (wildcard types exactly,
 * subscribed names for the others), and the report made from the status
 * document (pending NACKs, refused policy, workloads, SVID expiry, versions).
 */
import t from 'tap';
import { buildStatus } from '../../../agent/status/status.js';
import { reportKey, syncReport } from '../../../agent/status/sync-report.js';
import { typeSync } from '../../../agent/status/type-sync.js';
import { NOTHING_ACKED } from '../../../agent/xds/cache/acked-resources.js';
import type { StreamStatus } from '../../../agent/xds/server/stream-status.js';
import { makeSnapshot } from '../../../agent/xds/snapshot.js';
import { earliestSvidExpiry } from '../../../lib/proto/node-status.js';
import { statusInput } from '../../support/status-input.js';

const snapshot = makeSnapshot({
  listeners: new Map([['l1', { name: 'l1' }]]),
  clusters: new Map([
    ['c1', { name: 'c1' }],
    ['c2', { name: 'c2' }],
  ]),
  endpoints: new Map([
    ['c1', { cluster_name: 'c1' }],
    ['c2', { cluster_name: 'c2' }],
  ]),
  routes: new Map(),
  secrets: new Map([
    ['default', { name: 'default' }],
    ['unused', { name: 'unused' }],
  ]),
});
const v = (kind: 'listeners' | 'clusters' | 'endpoints' | 'secrets', name: string) => snapshot.versions[kind].get(name) ?? '';
const stream = (subscribed: Record<string, '*' | string[]>): StreamStatus => ({
  id: 1,
  api: 'delta',
  node: 'n1',
  connectedAt: 0,
  types: Object.entries(subscribed).map(([type, names]) => ({ type, subscribed: names, resources: 0, pending: 0 })),
});
const syncOf = (list: ReturnType<typeof typeSync>) => Object.fromEntries(list.map((s) => [s.type, s.inSync]));

t.test('typeSync: every acknowledged resource at the built version; non-wildcard types by subscription', async (t) => {
  const streams = [stream({ CDS: '*', LDS: '*', EDS: ['c1', 'c2'], SDS: ['default'], RDS: [] })];
  const acked = {
    listeners: new Map([['l1', v('listeners', 'l1')]]),
    clusters: new Map([
      ['c1', v('clusters', 'c1')],
      ['c2', v('clusters', 'c2')],
    ]),
    endpoints: new Map([['c1', v('endpoints', 'c1')]]),
    routes: new Map(),
    secrets: new Map([['default', v('secrets', 'default')]]),
  };
  const sync = typeSync({ served: snapshot, acked, streams });
  t.same(syncOf(sync), { CDS: true, EDS: false, LDS: true, RDS: true, SDS: true }, 'EDS c2 not acked; SDS "unused" not subscribed');
  t.same(
    sync.map((s) => s.resources),
    [2, 2, 1, 0, 2],
  );

  const extra = { ...acked, listeners: new Map([...acked.listeners, ['old', 'x']]) };
  t.equal(syncOf(typeSync({ served: snapshot, acked: extra, streams })).LDS, false, 'a removed listener Envoy still runs');
  const older = { ...acked, clusters: new Map([...acked.clusters, ['c2', 'older']]) };
  t.equal(syncOf(typeSync({ served: snapshot, acked: older, streams })).CDS, false, 'a cluster at an older version');
  t.same(Object.values(syncOf(typeSync({ served: snapshot, acked, streams: [] }))), [false, false, false, false, false], 'no stream');
  t.same(Object.values(syncOf(typeSync({ served: undefined, acked: NOTHING_ACKED, streams }))), [false, false, false, false, false]);
});

t.test('syncReport: from the status document', async (t) => {
  const now = Date.UTC(2026, 10, 22, 12);
  const doc = buildStatus(statusInput());
  doc.envoy = { state: 'running', version: '1.40.0' };
  doc.xds = {
    socket: '/x',
    snapshotVersion: 'abcdef012345',
    streams: [{ id: 1, api: 'delta', node: 'n1' }],
    counters: {
      sotw: { responses: 0, bytes: 0, resources: 0, removed: 0, acks: 0, nacks: 0 },
      delta: { responses: 0, bytes: 0, resources: 0, removed: 0, acks: 0, nacks: 0 },
    },
    types: [
      { type: 'CDS', ackedVersion: 'c1', ackedAt: new Date(now - 1000).toISOString() },
      {
        type: 'RDS',
        ackedVersion: 'r1',
        ackedAt: new Date(now - 2000).toISOString(),
        lastNack: { version: 'r2', detail: 'x'.repeat(5000), at: new Date(now - 1000).toISOString() },
      },
      {
        type: 'LDS',
        ackedVersion: 'l2',
        ackedAt: new Date(now - 500).toISOString(),
        lastNack: { version: 'l1', detail: 'old', at: new Date(now - 3000).toISOString() },
      },
    ],
  };
  doc.policy = { revision: 7, origin: 'controlplane', connected: true };
  doc.dataPlane = {
    policy: {
      revision: 7,
      origin: 'controlplane',
      resources: [
        { kind: 'TrafficRoute', name: 'api', version: 2, revision: 7, state: 'rolled-back', reason: 'Envoy rejected it', servedVersion: 1 },
        { kind: 'TrafficPolicy', name: 'ok', version: 1, revision: 3, state: 'applied' },
      ],
    },
  };
  doc.nodeSvid = { state: 'valid', notAfter: new Date(now + 86_400_000).toISOString() };
  doc.workloads = [
    {
      name: 'web',
      file: 'web.yaml',
      spiffeId: 'spiffe://example.org/ns/default/sa/web',
      port: 1,
      meshPort: 2,
      registration: 'registered',
      check: 'passing',
      svid: { state: 'valid', notAfter: new Date(now + 3_600_000).toISOString() },
      dataPlane: 'serving',
    },
  ];
  const sync = ['CDS', 'EDS', 'LDS', 'RDS', 'SDS'].map((type) => ({ type, inSync: type !== 'RDS', resources: 1 }));
  const r = syncReport({ doc, sync, agentVersion: '0.1.0', now });
  t.match(r, {
    agent_version: '0.1.0',
    envoy_version: '1.40.0',
    envoy_state: 'running',
    envoy_connected: true,
    snapshot_version: 'abcdef012345',
    policy_revision: 7,
    policy_connected: true,
    sent_at_ms: now,
    policy_rejections: [{ kind: 'TrafficRoute', name: 'api', version: 2, state: 'rolled-back', reason: 'Envoy rejected it' }],
    workloads: [{ name: 'web', health: 'passing', data_plane: 'serving', svid_not_after_ms: now + 3_600_000, svid_state: 'valid' }],
  });
  t.equal(r.policy_rejections.length, 1, 'applied resources are not listed');
  const rds = r.xds.find((x) => x.type === 'RDS');
  t.equal(rds?.nack_pending, true, 'a NACK after the last ACK is pending');
  t.equal(rds?.last_nack?.detail.length, 1024, 'a long detail is cut');
  t.equal(r.xds.find((x) => x.type === 'LDS')?.nack_pending, false, 'an older NACK is answered');
  t.equal(r.xds.find((x) => x.type === 'EDS')?.last_nack, null);
  t.equal(earliestSvidExpiry(r), now + 3_600_000, 'the earliest SVID expiry is the workload one');
  t.equal(reportKey(r), reportKey({ ...r, sent_at_ms: now + 5 }), 'the send time does not make a change');
  t.not(reportKey(r), reportKey({ ...r, policy_revision: 8 }));
  t.ok(JSON.stringify(r).length < 8192, 'a report stays small');
});
