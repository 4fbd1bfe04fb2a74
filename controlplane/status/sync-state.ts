/**
 * A node's sync state, derived from its latest status report. Pure: the time
 * comes in as `now` (the control plane's clock), so tests drive it.
 *
 * The first rule that holds wins:
 * - UNKNOWN: no report since the control plane started, and it started less
 *   than staleAfter ago (the node may not have reported yet);
 * - STALE: no report within staleAfter (the agent is down, cut off, or too
 *   old to report);
 * - NACK: Envoy rejected a configuration and has not accepted a newer one of
 *   that type since (a pending NACK), or a policy resource is rolled back,
 *   rejected or invalid on the node;
 * - STALE: the report is fresh but Envoy is not in step: not connected to
 *   the agent, a type not acknowledged at the latest version the agent
 *   built, the agent's latest snapshot refused, or the policy revision the
 *   node holds is not the one the control plane last sent it;
 * - SYNCED: otherwise.
 */
import type { NodeStatusReportWire } from '../../lib/proto/node-status.js';

export type SyncState = 'SYNCED' | 'NACK' | 'STALE' | 'UNKNOWN';

export interface SyncInput {
  /** The latest report and when it arrived (control-plane clock); undefined: none since start. */
  latest?: { report: NodeStatusReportWire; receivedAt: number };
  now: number;
  staleAfterMs: number;
  /** When the control plane started: a node gets staleAfter to send its first report. */
  startedAt: number;
  /** The policy revision the control plane last sent this node; undefined when it has no open policy watch. */
  expectedPolicyRevision?: number;
}

export interface SyncVerdict {
  state: SyncState;
  /** Why, one line; empty for SYNCED. */
  reason: string;
}

const oneLine = (text: string) => text.replace(/\s+/g, ' ').trim();
const seconds = (ms: number) => `${Math.round(ms / 1000)}s`;

export function deriveSyncState(input: SyncInput): SyncVerdict {
  const { latest, now, staleAfterMs } = input;
  if (latest === undefined) {
    if (now - input.startedAt < staleAfterMs) return { state: 'UNKNOWN', reason: 'no status report yet since the control plane started' };
    return { state: 'STALE', reason: `no status report in ${seconds(now - input.startedAt)} (staleAfter ${seconds(staleAfterMs)})` };
  }
  const age = now - latest.receivedAt;
  if (age > staleAfterMs) return { state: 'STALE', reason: `last report ${seconds(age)} ago (staleAfter ${seconds(staleAfterMs)})` };
  const r = latest.report;
  const nacked = r.xds.find((t) => t.nack_pending && t.last_nack);
  if (nacked?.last_nack)
    return {
      state: 'NACK',
      reason: `Envoy rejected ${nacked.type} version ${nacked.last_nack.version.slice(0, 12)}: ${oneLine(nacked.last_nack.detail)}`,
    };
  const rejected = r.policy_rejections[0];
  if (rejected !== undefined)
    return {
      state: 'NACK',
      reason: `policy ${rejected.kind}/${rejected.name} version ${rejected.version} ${rejected.state}${rejected.reason === '' ? '' : `: ${oneLine(rejected.reason)}`}`,
    };
  if (r.snapshot_error !== '') return { state: 'STALE', reason: `the agent refused its latest snapshot: ${oneLine(r.snapshot_error)}` };
  if (!r.envoy_connected) return { state: 'STALE', reason: `Envoy is not connected to the agent (Envoy ${r.envoy_state || 'unknown'})` };
  const behind = r.xds.filter((t) => !t.in_sync).map((t) => t.type);
  if (behind.length > 0) return { state: 'STALE', reason: `Envoy has not acknowledged the latest ${behind.join(', ')} yet` };
  if (input.expectedPolicyRevision !== undefined && r.policy_revision !== input.expectedPolicyRevision)
    return {
      state: 'STALE',
      reason: `the node holds policy revision ${r.policy_revision}; the control plane sent it revision ${input.expectedPolicyRevision}`,
    };
  return { state: 'SYNCED', reason: '' };
}
