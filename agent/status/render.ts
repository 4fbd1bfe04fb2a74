/** The human summary of a status document (`mesh-agent status` without --json). Pure. */
import type { CaptureStatus } from '../tproxy/capture-status.js';
import type { StatusDocument } from './status.js';

function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return `${[line(headers), ...rows.map(line)].join('\n')}\n`;
}

const short = (value: string | undefined, n = 12) => (value === undefined ? '-' : value.length > n ? `${value.slice(0, n)}…` : value);
const time = (iso: string | undefined) => (iso === undefined ? '-' : iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z'));

/** A workload SVID served from the state folder (not renewed by the control plane since the agent started). */
const fromDisk = (svid: { source?: string }) => (svid.source === 'disk' ? ' (disk)' : '');

/** The configuration file line: loaded or rejected, when it was last reloaded, what waits for a restart. */
function renderConfig(c: NonNullable<StatusDocument['config']>): string {
  const parts = [`${c.file}: ${c.state}`];
  if (c.lastReloadAt !== undefined) parts.push(`reloaded ${time(c.lastReloadAt)}`);
  if (c.envoy !== undefined) parts.push(`envoy ${c.envoy}`);
  if (c.restartNeeded !== undefined) parts.push(`restart needed for ${c.restartNeeded.join(', ')}`);
  const lines = [`config         ${parts.join(', ')}\n`];
  if (c.error !== undefined) lines.push(`  ${c.error.code}: ${c.error.message.replace(/\n\s*/g, '; ')}\n`);
  return lines.join('');
}

export function renderStatus(doc: StatusDocument): string {
  const out: string[] = [];
  out.push(`node ${doc.node}: ${doc.healthy ? 'healthy' : 'UNHEALTHY'}\n`);
  out.push(`consul         ${doc.consul.address} (${doc.consul.mode} mode): ${doc.consul.state}\n`);
  if (doc.controlPlane !== undefined) {
    const cp = doc.controlPlane;
    out.push(
      `control plane  ${cp.address}: ${cp.state}${cp.lastError ? ` (${cp.lastError})` : ''}; bundle ${cp.bundleRoots} root(s), sequence ${cp.bundleSequence}\n`,
    );
  }
  if (doc.nodeSvid !== undefined)
    out.push(`node SVID      ${doc.nodeSvid.state}, serial ${short(doc.nodeSvid.serial)}, expires ${time(doc.nodeSvid.notAfter)}\n`);
  if (doc.policy !== undefined) {
    const p = doc.policy;
    const from = p.origin === 'controlplane' ? 'from the control plane' : p.origin === 'disk' ? 'from disk' : 'none received';
    out.push(
      `policy         revision ${p.revision} (${from}), watch ${p.connected ? 'open' : 'closed'}${p.lastError ? ` (${p.lastError})` : ''}, received ${time(p.receivedAt)}\n`,
    );
  }
  if (doc.tracing !== undefined) {
    const tr = doc.tracing;
    out.push(`tracing        ${tr.provider} ${tr.address}, ${tr.samplingPercent}% sampled (from ${tr.source})\n`);
  }
  if (doc.envoy !== undefined) {
    const e = doc.envoy as Record<string, unknown>;
    const parts = [String(e.state)];
    if (e.pid !== undefined) parts.push(`pid ${String(e.pid)}`);
    if (e.version !== undefined) parts.push(`version ${String(e.version)}`);
    if (e.epoch !== undefined) parts.push(`epoch ${String(e.epoch)}`);
    if (e.restarts !== undefined) parts.push(`restarts ${String(e.restarts)}`);
    if (e.adminAddress !== undefined) parts.push(`admin ${String(e.adminAddress)}`);
    out.push(`envoy          ${parts.join(', ')}\n`);
  }
  if (doc.transparentProxy !== undefined) out.push(renderCapture(doc.transparentProxy));
  if (doc.config !== undefined) out.push(renderConfig(doc.config));
  out.push('\n');
  out.push(
    table(
      ['WORKLOAD', 'SPIFFE ID', 'MESH PORT', 'REGISTRATION', 'CHECK', 'SVID', 'SERIAL', 'EXPIRES', 'DATA PLANE'],
      doc.workloads.map((w) => [
        w.name,
        w.spiffeId,
        String(w.meshPort),
        w.registration,
        w.check ?? '-',
        w.svid === undefined ? '-' : `${w.svid.state}${fromDisk(w.svid)}`,
        short(w.svid?.serial),
        time(w.svid?.notAfter),
        `${w.dataPlane ?? '-'}${w.mtls === undefined ? '' : ' (mTLS permissive: plaintext accepted)'}`,
      ]),
    ),
  );
  for (const w of doc.workloads)
    if (w.mtls !== undefined)
      out.push(
        `\nwarning: workload ${w.name} accepts plaintext on mesh port ${w.meshPort} (PeerAuthentication ${w.mtls.policy}: permissive)\n`,
      );
  if (doc.upstreams.length > 0) {
    out.push('\n');
    out.push(
      table(
        ['UPSTREAM', 'LOCAL PORT', 'CALLER', 'INSTANCES', 'ENDPOINTS', 'SOURCE', 'WATCH'],
        doc.upstreams.map((u) => [
          u.service,
          u.localPort === undefined ? '-' : String(u.localPort),
          u.caller ?? '-',
          String(u.instances),
          u.endpoints === undefined ? '-' : String(u.endpoints),
          u.source,
          u.watch,
        ]),
      ),
    );
  }
  const policy = doc.dataPlane?.policy;
  if (policy !== undefined && (policy.revision > 0 || policy.resources.length > 0)) {
    out.push(`\npolicy in the data plane: revision ${policy.revision} (${policy.origin}), ${policy.resources.length} resource(s)\n`);
    if (policy.resources.length > 0)
      out.push(
        table(
          ['POLICY', 'VERSION', 'STATE', 'REASON'],
          policy.resources.map((r) => [
            `${r.kind}/${r.name}`,
            r.servedVersion === undefined ? String(r.version) : `${r.version} (serving ${r.servedVersion})`,
            r.state,
            // Envoy's NACK detail may span lines: one line per resource in the table (--json has it as is).
            r.reason === undefined ? '-' : r.reason.replace(/\s+/g, ' ').trim(),
          ]),
        ),
      );
  }
  if (doc.xds !== undefined) {
    out.push(
      `\nxDS: snapshot ${doc.xds.snapshotVersion ?? '-'}, ${doc.xds.streams.map((s) => `${s.api} stream from ${s.node}`).join(', ') || 'Envoy not connected'}\n`,
    );
    out.push(
      table(
        ['TYPE', 'ACKED VERSION', 'LAST NACK'],
        doc.xds.types.map((t) => [
          t.type,
          t.ackedVersion ?? '-',
          t.lastNack === undefined ? '-' : `${t.lastNack.at} ${t.lastNack.version}: ${t.lastNack.detail}`,
        ]),
      ),
    );
  }
  if (doc.problems.length > 0) out.push(`\nproblems:\n${doc.problems.map((p) => `  - ${p}`).join('\n')}\n`);
  return out.join('');
}

/** The capture lines: state, backend, policy, rules expected vs installed, repairs; the drift lines; a loud line when lifted. */
export function renderCapture(c: CaptureStatus): string {
  const parts = [
    c.state === 'lifted' ? 'LIFTED' : c.state,
    `backend ${c.backend ?? '-'}`,
    `failurePolicy ${c.failurePolicy}`,
    `rules ${c.rules.installed}/${c.rules.expected} installed/expected`,
    `ipv6 ${c.ipv6 ? 'on' : 'off'}`,
    `inbound ports ${c.inboundPorts.length === 0 ? '-' : c.inboundPorts.join(',')}`,
    `repairs ${c.repairs}`,
    `checked ${time(c.lastCheckAt === undefined ? undefined : new Date(c.lastCheckAt).toISOString())}`,
  ];
  const out = [`capture        ${parts.join(', ')}\n`];
  for (const line of c.drift.missing) out.push(`  missing     ${line}\n`);
  for (const line of c.drift.unexpected) out.push(`  unexpected  ${line}\n`);
  if (c.error !== undefined) out.push(`  error       ${c.error.code}: ${c.error.message.replace(/\s+/g, ' ').trim()}\n`);
  if (c.state === 'lifted') out.push(`  WARNING: ${c.warning ?? 'capture lifted'}\n`);
  else if (c.warning !== undefined) out.push(`  warning: ${c.warning}\n`);
  return out.join('');
}
