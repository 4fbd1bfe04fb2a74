/**
 * What the Admin API shows of a node's sync: the NodeInfo fields from its
 * latest report and the derived state (sync-state.ts), and the detail for
 * `meshctl node status`. Revoked nodes have no sync state.
 */
import { MeshError } from '../../lib/errors.js';
import { earliestSvidExpiry } from '../../lib/proto/node-status.js';
import type { NodeRow } from '../store/node-repo.js';
import type { NodeStatusBook } from './node-status-book.js';
import { deriveSyncState } from './sync-state.js';

export interface NodeSyncSource {
  book: NodeStatusBook;
  /** The policy revision the control plane last sent the node (PolicyFanout.revisionFor). */
  expectedPolicyRevision(node: string): number | undefined;
  now(): number;
  staleAfterMs: number;
  startedAt: number;
}

export interface NodeSyncFields {
  sync_state: string;
  sync_reason: string;
  agent_version: string;
  envoy_version: string;
  earliest_svid_expiry_ms: number;
  last_report_at_ms: number;
}

export function nodeSyncFields(row: Pick<NodeRow, 'name' | 'status'>, source: NodeSyncSource): NodeSyncFields {
  const latest = source.book.latest(row.name);
  const base = {
    agent_version: latest?.report.agent_version ?? '',
    envoy_version: latest?.report.envoy_version ?? '',
    earliest_svid_expiry_ms: latest === undefined ? 0 : earliestSvidExpiry(latest.report),
    last_report_at_ms: latest?.receivedAt ?? 0,
  };
  if (row.status !== 'active') return { sync_state: '', sync_reason: `node ${row.status}`, ...base };
  const expected = source.expectedPolicyRevision(row.name);
  const verdict = deriveSyncState({
    ...(latest === undefined ? {} : { latest }),
    now: source.now(),
    staleAfterMs: source.staleAfterMs,
    startedAt: source.startedAt,
    ...(expected === undefined ? {} : { expectedPolicyRevision: expected }),
  });
  return { sync_state: verdict.state, sync_reason: verdict.reason, ...base };
}

/** The error for a name not on record. */
export function unknownNode(name: string): MeshError {
  return new MeshError('MESH_E_NODE_UNKNOWN', `no node named ${JSON.stringify(name)}; meshctl node list shows the nodes`, {
    details: { node: name },
  });
}

/** NodeStatusDetail without `node` (the caller adds the NodeInfo). */
export function nodeStatusDetail(row: Pick<NodeRow, 'name'>, source: NodeSyncSource) {
  const latest = source.book.latest(row.name);
  const expected = source.expectedPolicyRevision(row.name);
  return {
    ...(latest === undefined ? {} : { report: latest.report, received_at_ms: latest.receivedAt }),
    expected_policy_revision: expected ?? 0,
    stale_after_ms: source.staleAfterMs,
    policy_watch_open: expected !== undefined,
  };
}
