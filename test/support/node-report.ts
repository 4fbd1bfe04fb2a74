/** Node status reports for unit tests: a healthy one (every type in sync), with any field replaced. */
import type { NodeStatusReportWire, XdsTypeSyncWire } from '../../lib/proto/node-status.js';

export const xdsType = (name: string, extra: Partial<XdsTypeSyncWire> = {}): XdsTypeSyncWire => ({
  type: name,
  acked_version: 'abc',
  acked_at_ms: 1,
  in_sync: true,
  last_nack: null,
  nack_pending: false,
  resources: 2,
  ...extra,
});

export function report(extra: Partial<NodeStatusReportWire> = {}): NodeStatusReportWire {
  return {
    agent_version: '0.1.0',
    envoy_version: '1.40.0',
    envoy_state: 'running',
    snapshot_version: 'abcdef',
    snapshot_error: '',
    xds: ['CDS', 'EDS', 'LDS', 'RDS', 'SDS'].map((n) => xdsType(n)),
    policy_revision: 4,
    policy_connected: true,
    policy_rejections: [],
    workloads: [],
    node_svid_not_after_ms: 0,
    sent_at_ms: 0,
    envoy_connected: true,
    ...extra,
  };
}
