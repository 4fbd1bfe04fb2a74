/**
 * mesh.controlplane.v1.NodeStatusReport as grpc-js decodes it (keepCase,
 * longs as numbers, defaults filled): what an agent reports of its Envoy's
 * sync and the control plane keeps per node. One shape on both sides of the
 * wire, so the agent builds it and the control plane reads it without a
 * second model.
 */

export interface XdsNackWire {
  version: string;
  detail: string;
  at_ms: number;
}

export interface XdsTypeSyncWire {
  /** CDS, EDS, LDS, RDS or SDS. */
  type: string;
  acked_version: string;
  acked_at_ms: number;
  /** Envoy acknowledged every resource of this type at the version the agent built. */
  in_sync: boolean;
  /** Absent (null once decoded) when Envoy never rejected this type. */
  last_nack?: XdsNackWire | null;
  /** The last NACK came after the last ACK: Envoy runs an older configuration than the agent built. */
  nack_pending: boolean;
  resources: number;
}

export interface PolicyRejectionWire {
  kind: string;
  name: string;
  version: number;
  /** rolled-back | rejected | invalid (agent/dataplane/policy-status.ts). */
  state: string;
  reason: string;
}

export interface WorkloadSyncWire {
  name: string;
  spiffe_id: string;
  /** passing | warning | critical | unknown */
  health: string;
  /** "serving", or why Envoy does not serve its mesh listener. */
  data_plane: string;
  /** 0: no SVID yet. */
  svid_not_after_ms: number;
  svid_state: string;
}

export interface NodeStatusReportWire {
  agent_version: string;
  envoy_version: string;
  envoy_state: string;
  snapshot_version: string;
  snapshot_error: string;
  xds: XdsTypeSyncWire[];
  policy_revision: number;
  policy_connected: boolean;
  policy_rejections: PolicyRejectionWire[];
  workloads: WorkloadSyncWire[];
  node_svid_not_after_ms: number;
  sent_at_ms: number;
  envoy_connected: boolean;
}

/** The earliest SVID expiry a report names (node and workloads), 0 when it names none. */
export function earliestSvidExpiry(report: Pick<NodeStatusReportWire, 'node_svid_not_after_ms' | 'workloads'>): number {
  const all = [report.node_svid_not_after_ms, ...report.workloads.map((w) => w.svid_not_after_ms)].filter((ms) => ms > 0);
  return all.length === 0 ? 0 : Math.min(...all);
}
