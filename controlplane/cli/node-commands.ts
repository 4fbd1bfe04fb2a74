/**
 * `meshctl node list` and `meshctl node status NAME`: the nodes on record
 * with their proxy sync (like `istioctl proxy-status`), from the status
 * reports agents send (controlplane/status/).
 */
import { EXIT_OK } from '../../lib/cli.js';
import { MeshError } from '../../lib/errors.js';
import { earliestSvidExpiry, type NodeStatusReportWire } from '../../lib/proto/node-status.js';
import type { NodeSyncFields } from '../status/node-sync-view.js';
import { iso, table } from './cli-format.js';
import type { Spec } from './commands.js';

/** mesh.controlplane.v1.NodeInfo as meshctl receives it: the node on record and its sync fields. */
export interface NodeInfoWire extends NodeSyncFields {
  name: string;
  spiffe_id: string;
  allow: string[];
  status: string;
  joined_at_ms: number;
  revoked_at_ms: number;
  last_seen_at_ms: number;
}

export interface NodeStatusDetailWire {
  node: NodeInfoWire;
  report: NodeStatusReportWire | null;
  received_at_ms: number;
  expected_policy_revision: number;
  stale_after_ms: number;
  policy_watch_open: boolean;
}

const json = { json: { type: 'boolean' } } as const;

/** "12s ago", "3m ago", "2h ago", "4d ago"; '-' for never. */
export function ago(ms: number, now: number): string {
  if (!ms) return '-';
  const s = Math.max(0, Math.round((now - Number(ms)) / 1000));
  if (s < 120) return `${s}s ago`;
  if (s < 7200) return `${Math.round(s / 60)}m ago`;
  if (s < 172_800) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86_400)}d ago`;
}

/** An ISO time to the second ('-' for none). */
const when = (ms: number) => (ms ? iso(ms).replace(/\.\d{3}Z$/, 'Z') : '-');
const lastSeen = (n: NodeInfoWire) => Math.max(Number(n.last_seen_at_ms) || 0, Number(n.last_report_at_ms) || 0);

export function nodeTable(nodes: readonly NodeInfoWire[], now: number): string {
  return table([
    ['NAME', 'STATUS', 'SYNC', 'LAST SEEN', 'AGENT', 'ENVOY', 'SVID EXPIRES', 'ALLOWED IDS'],
    ...nodes.map((n) => [
      n.name,
      n.status,
      n.sync_state || '-',
      ago(lastSeen(n), now),
      n.agent_version || '-',
      n.envoy_version || '-',
      when(n.earliest_svid_expiry_ms),
      n.allow.join(' ') || '-',
    ]),
  ]);
}

export function nodeListSpec(): Spec {
  return {
    name: 'node list',
    summary: 'list nodes with their proxy sync state (SYNCED, NACK, STALE), last seen, agent version and earliest SVID expiry',
    usage: '[--json]\n  --json   print JSON (one array; sync fields as in meshctl node status)\n',
    options: json,
    async run(client, values, _p, io) {
      const { nodes } = await client.call<{ nodes: NodeInfoWire[] }>('ListNodes');
      io.stdout.write(values.json ? `${JSON.stringify(nodes)}\n` : nodeTable(nodes, Date.now()));
      return EXIT_OK;
    },
  };
}

export function nodeStatusSpec(): Spec {
  return {
    name: 'node status',
    summary: "one node's proxy sync in detail: per xDS type versions and NACKs, policy revision, workloads, SVIDs, versions",
    usage: 'NAME [--json]\n  --json   print JSON (the node, its latest report, the policy revision the control plane sent it)\n',
    options: json,
    positionals: true,
    async run(client, values, positionals, io) {
      const [name] = positionals;
      if (name === undefined || positionals.length !== 1) throw new MeshError('MESH_E_USAGE', 'node status: give exactly one node NAME');
      const detail = await client.call<NodeStatusDetailWire>('GetNodeStatus', { name });
      if (values.json) io.stdout.write(`${JSON.stringify({ ...detail, report: detail.report ?? null })}\n`);
      else io.stdout.write(renderNodeStatus(detail, Date.now()));
      return EXIT_OK;
    },
  };
}

export function renderNodeStatus(d: NodeStatusDetailWire, now: number): string {
  const n = d.node;
  const r = d.report;
  const staleAfter = `${Math.round(Number(d.stale_after_ms) / 1000)}s`;
  const head: string[][] = [
    ['node', `${n.name} (${n.spiffe_id})`],
    ['status', n.status],
    ['sync', `${n.sync_state || '-'}${n.sync_reason ? `: ${n.sync_reason}` : ''}`],
    ['last report', r ? `${when(d.received_at_ms)} (${ago(d.received_at_ms, now)}; stale after ${staleAfter})` : 'none yet'],
  ];
  if (!r) return table(head);
  head.push(
    ['agent', r.agent_version || '-'],
    [
      'envoy',
      `${r.envoy_version || '-'} (${r.envoy_state || 'unknown'}, ${r.envoy_connected ? 'connected' : 'not connected'} to the agent)`,
    ],
    ['snapshot', `${r.snapshot_version || '-'}${r.snapshot_error ? ` (latest build refused: ${r.snapshot_error})` : ''}`],
    [
      'policy',
      `revision ${r.policy_revision}${d.policy_watch_open ? ` (the control plane sent ${d.expected_policy_revision})` : ' (no open policy watch)'}`,
    ],
    ['node SVID', `expires ${when(r.node_svid_not_after_ms)}`],
    ['earliest SVID', `expires ${when(earliestSvidExpiry(r))}`],
  );
  let out = table(head);
  out += `\n${table([
    ['XDS', 'IN SYNC', 'RESOURCES', 'ACKED VERSION', 'ACKED AT', 'LAST NACK'],
    ...r.xds.map((t) => [
      t.type,
      t.in_sync ? 'yes' : 'no',
      String(t.resources),
      t.acked_version || '-',
      when(t.acked_at_ms),
      t.last_nack
        ? `${t.nack_pending ? 'PENDING ' : ''}${when(t.last_nack.at_ms)} version ${t.last_nack.version}: ${t.last_nack.detail.replace(/\s+/g, ' ')}`
        : '-',
    ]),
  ])}`;
  if (r.workloads.length > 0)
    out += `\n${table([
      ['WORKLOAD', 'HEALTH', 'DATA PLANE', 'SVID', 'SVID EXPIRES', 'SPIFFE ID'],
      ...r.workloads.map((w) => [w.name, w.health, w.data_plane || '-', w.svid_state || '-', when(w.svid_not_after_ms), w.spiffe_id]),
    ])}`;
  if (r.policy_rejections.length > 0)
    out += `\n${table([
      ['POLICY', 'VERSION', 'STATE', 'REASON'],
      ...r.policy_rejections.map((p) => [`${p.kind}/${p.name}`, String(p.version), p.state, p.reason.replace(/\s+/g, ' ')]),
    ])}`;
  return out;
}
