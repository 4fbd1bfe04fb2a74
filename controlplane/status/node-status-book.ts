/**
 * The latest status report of each node, in memory (a report is a few KiB and
 * is replaced on every heartbeat; what outlives a restart is the node's
 * last_seen_at in SQLite). Reports are checked for size and shape before they
 * are kept: the node is the one its certificate names, never a field of the
 * report.
 */
import { MeshError } from '../../lib/errors.js';
import type { NodeStatusReportWire } from '../../lib/proto/node-status.js';

/** At most this many entries per list in one report. */
export const MAX_REPORT_ITEMS = 4096;

export interface LatestReport {
  readonly report: NodeStatusReportWire;
  readonly receivedAt: number;
}

/** A decoded report with every list present and within bounds; throws MESH_E_USAGE naming the field. */
export function checkReport(raw: NodeStatusReportWire): NodeStatusReportWire {
  for (const field of ['xds', 'policy_rejections', 'workloads'] as const) {
    const list = raw[field] ?? [];
    if (list.length > MAX_REPORT_ITEMS)
      throw new MeshError('MESH_E_USAGE', `a status report may name at most ${MAX_REPORT_ITEMS} entries in ${field}`, {
        details: { field },
      });
  }
  return {
    ...raw,
    xds: (raw.xds ?? []).map((t) => ({ ...t, last_nack: t.last_nack ?? null })),
    policy_rejections: raw.policy_rejections ?? [],
    workloads: raw.workloads ?? [],
  };
}

export class NodeStatusBook {
  private readonly latestBy = new Map<string, LatestReport>();

  record(node: string, report: NodeStatusReportWire, now: number): void {
    this.latestBy.set(node, { report: checkReport(report), receivedAt: now });
  }

  latest(node: string): LatestReport | undefined {
    return this.latestBy.get(node);
  }

  /** A revoked node's report goes: its state is its status, not its sync. */
  forget(node: string): void {
    this.latestBy.delete(node);
  }
}
