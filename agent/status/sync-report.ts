/**
 * The status report the agent sends the control plane (NodeStatus.Report),
 * made from its status document and the per-type sync. Pure.
 *
 * Long texts (Envoy's NACK details, reasons) are cut so that a report stays
 * far below the control plane's message limit; `reportKey` is what decides
 * whether a report changed (everything but the time it was made).
 */
import type { NodeStatusReportWire, WorkloadSyncWire, XdsTypeSyncWire } from '../../lib/proto/node-status.js';
import type { StatusDocument } from './status.js';
import type { TypeSync } from './type-sync.js';

/** At most this many characters of a NACK detail or a reason. */
export const MAX_DETAIL = 1024;

const cut = (text: string | undefined) => {
  const t = text ?? '';
  return t.length <= MAX_DETAIL ? t : `${t.slice(0, MAX_DETAIL - 1)}…`;
};
const ms = (iso: string | undefined) => {
  const at = iso === undefined ? Number.NaN : Date.parse(iso);
  return Number.isNaN(at) ? 0 : at;
};

/** The policy states that mean the node does not run the version the control plane sent. */
const REFUSED = new Set(['rolled-back', 'rejected', 'invalid']);

export function syncReport(input: {
  doc: StatusDocument;
  sync: readonly TypeSync[];
  agentVersion: string;
  now: number;
}): NodeStatusReportWire {
  const { doc, sync } = input;
  const envoy = doc.envoy;
  const types = new Map((doc.xds?.types ?? []).map((t) => [t.type, t]));
  const xds: XdsTypeSyncWire[] = sync.map((s) => {
    const t = types.get(s.type);
    const nack = t?.lastNack;
    return {
      type: s.type,
      acked_version: t?.ackedVersion ?? '',
      acked_at_ms: ms(t?.ackedAt),
      in_sync: s.inSync,
      last_nack: nack === undefined ? null : { version: nack.version, detail: cut(nack.detail), at_ms: ms(nack.at) },
      // The same rule as mesh-agent status: a NACK after the latest ACK.
      nack_pending: nack !== undefined && (t?.ackedAt === undefined || ms(nack.at) >= ms(t.ackedAt)),
      resources: s.resources,
    };
  });
  const workloads: WorkloadSyncWire[] = doc.workloads.map((w) => ({
    name: w.name,
    spiffe_id: w.spiffeId,
    health: w.check ?? 'unknown',
    data_plane: cut(w.dataPlane ?? ''),
    svid_not_after_ms: ms(w.svid?.notAfter),
    svid_state: w.svid?.state ?? '',
  }));
  return {
    agent_version: input.agentVersion,
    envoy_version: typeof envoy?.version === 'string' ? envoy.version : '',
    envoy_state: envoy?.state ?? '',
    snapshot_version: doc.xds?.snapshotVersion ?? '',
    snapshot_error: cut(doc.xds?.lastError),
    xds,
    policy_revision: doc.policy?.revision ?? 0,
    policy_connected: doc.policy?.connected ?? false,
    policy_rejections: (doc.dataPlane?.policy.resources ?? [])
      .filter((r) => REFUSED.has(r.state))
      .map((r) => ({ kind: r.kind, name: r.name, version: r.version, state: r.state, reason: cut(r.reason) })),
    workloads,
    node_svid_not_after_ms: ms(doc.nodeSvid?.notAfter),
    sent_at_ms: input.now,
    envoy_connected: (doc.xds?.streams.length ?? 0) > 0,
  };
}

/** Equal keys: nothing the control plane shows changed (the send time is left out). */
export function reportKey(report: NodeStatusReportWire): string {
  const { sent_at_ms: _sent, ...rest } = report;
  return JSON.stringify(rest);
}
