/**
 * The tables of bench/vs-consul (markdown, printed and written into
 * bench/README.md between markers), as pure functions of the figures of one
 * run: one table per figure, both systems side by side and the ratio ours /
 * Consul's, then the targets of issue 16.
 */
import { pct } from './stats.js';
import { formatMarkdownTable as markdownTable } from './table.js';

export interface SideFigures {
  /** Per flip, ms from the write until Envoy applied it (its cluster's update_time, +1 ms). */
  applied: number[];
  /** Consul write -> this Envoy's admin API shows the flip, ms, one per flip. */
  delays: number[];
  /** Durations of the admin API polls during the flips, ms. */
  polls: number[];
  /** Envoy's `upstream_cx_rx_bytes_total` of its xDS cluster: growth over the flips / flips. */
  bytesPerChange: number;
  /** The same counter just before the flips, once both Envoys are ready (everything received from connect until then). */
  bytesUntilReady: number;
  /** Envoy process start (/proc starttime) -> all upstream clusters with every endpoint healthy, ms. */
  readyMs: number;
  /** Subscriptions that hit Envoy's initial_fetch_timeout before ready. */
  initFetchTimeouts: number;
  /** Set-up start (ours: `mesh-agent run` spawned; Consul's: the sidecar registered) -> ready, ms. */
  setupToReadyMs: number;
  /** VmRSS after the flips, MB: our agent / the Consul client agent (one reading). */
  agentRssMb: number;
  /**
   * VmRSS of the same process every 0.5 s over the flips and the 5 s after them,
   * MB. Its median is the figure: one reading moves 2-4 MB with where the
   * agent's garbage collector happens to be.
   */
  agentRssSamples: number[];
  envoyRssMb: number;
  /** Sum of Envoy's `update_rejected` stats, and how many such stats there were. */
  rejected: number;
  rejectedStats: number;
}

export interface VsConsulFigures {
  flips: number;
  /** The pause between two polls of one Envoy, ms. */
  pollMs: number;
  upstreams: number;
  instances: number;
  services: number;
  ours: SideFigures;
  consul: SideFigures;
  consulServerRssMb: number;
  /** Consul write -> a raw blocking query on the service at the server returns, ms (Consul's own share, the floor). */
  rawBlockingQuery: number[];
  /** Ours per flip, from the agent's /status xds.lastChange: Consul write -> new view in the agent (ms resolution), -> pushed, -> Envoy's ACK. */
  oursSteps?: { arrived: number[]; started: number[]; pushed: number[]; acked: number[] };
  /** `uptime` load averages seen during the run (start, before flips, end). */
  load: string[];
}

export const SECTION_START = '<!-- vs-consul:start (written by `npm run bench -- vs-consul`) -->';
export const SECTION_END = '<!-- vs-consul:end -->';

/** ours / Consul's as `0.42x`; `-` when Consul's is 0 or either is not a number. */
export function ratio(ours: number, consul: number): string {
  if (!Number.isFinite(ours) || !Number.isFinite(consul) || consul === 0) return '-';
  const r = ours / consul;
  return `${r >= 10 ? r.toFixed(1) : r.toFixed(2)}x`;
}

const ms = (v: number) => (v >= 100 ? v.toFixed(0) : v.toFixed(1));
const kb = (bytes: number) => (bytes / 1024).toFixed(bytes >= 100 * 1024 ? 0 : 1);
const mb = (v: number) => v.toFixed(1);

const HEAD = (unit: string) => [`figure (${unit})`, 'ours', 'Consul', 'ours / Consul'];
const row = (figure: string, ours: number, consul: number, fmt: (v: number) => string) => [
  figure,
  fmt(ours),
  fmt(consul),
  ratio(ours, consul),
];

export function propagationTable(f: VsConsulFigures): string {
  const p = (side: SideFigures, q: number) => pct(side.delays, q);
  const a = (side: SideFigures, q: number) => pct(side.applied, q);
  const p2 = (v: number[], q: number) => pct(v, q);
  return markdownTable(HEAD('ms'), [
    row(`Consul write -> Envoy applied it (its update_time for the cluster), p50 (${f.flips} flips)`, a(f.ours, 50), a(f.consul, 50), ms),
    row('p99', a(f.ours, 99), a(f.consul, 99), ms),
    row('max', Math.max(...f.ours.applied), Math.max(...f.consul.applied), ms),
    row(
      `Consul write -> a config_dump poll shows it, p50 (a poll every ${f.pollMs} ms after the last)`,
      p(f.ours, 50),
      p(f.consul, 50),
      ms,
    ),
    row('p99', p(f.ours, 99), p(f.consul, 99), ms),
    row('max', Math.max(...f.ours.delays), Math.max(...f.consul.delays), ms),
    [
      '(info) of which the Consul server: raw blocking query returns, p50 / p99',
      `${ms(pct(f.rawBlockingQuery, 50))} / ${ms(pct(f.rawBlockingQuery, 99))}`,
      'same',
      '-',
    ],
    ...(f.oursSteps === undefined
      ? []
      : [
          ['(info) ours: Consul write -> new view in the agent, p50 / p99', f.oursSteps.arrived],
          ['(info) ours: Consul write -> rebuild started, p50 / p99', f.oursSteps.started],
          ['(info) ours: Consul write -> pushed to Envoy, p50 / p99', f.oursSteps.pushed],
          ["(info) ours: Consul write -> Envoy's ACK, p50 / p99", f.oursSteps.acked],
        ].map(([label, v]) => [label as string, `${ms(pct(v as number[], 50))} / ${ms(pct(v as number[], 99))}`, '-', '-'])),
    row(
      `(info) one EDS config_dump poll of that Envoy, p50 (a poll every ${f.pollMs} ms after the last)`,
      p2(f.ours.polls, 50),
      p2(f.consul.polls, 50),
      ms,
    ),
  ]);
}

export function bytesTable(f: VsConsulFigures): string {
  return markdownTable(HEAD('KB'), [
    row('received by Envoy per flip (xDS cluster rx bytes)', f.ours.bytesPerChange, f.consul.bytesPerChange, kb),
    row('received from connect until ready (read before the flips)', f.ours.bytesUntilReady, f.consul.bytesUntilReady, kb),
  ]);
}

export function readyTable(f: VsConsulFigures): string {
  const whole = (v: number) => v.toFixed(0);
  return markdownTable(HEAD('ms'), [
    row(`Envoy start -> ${f.upstreams} upstream clusters with ${f.instances} healthy endpoints`, f.ours.readyMs, f.consul.readyMs, (v) =>
      v.toFixed(0),
    ),
    [
      "(info) subscriptions that hit Envoy's initial_fetch_timeout (15 s) on the way",
      whole(f.ours.initFetchTimeouts),
      whole(f.consul.initFetchTimeouts),
      '-',
    ],
    row(
      "(info) set-up start -> ready (ours: `mesh-agent run` spawned; Consul's: sidecar registered)",
      f.ours.setupToReadyMs,
      f.consul.setupToReadyMs,
      (v) => v.toFixed(0),
    ),
  ]);
}

/** The memory figure of one side: the median of its samples, the one reading when there are none. */
export function agentRss(side: SideFigures): number {
  return side.agentRssSamples.length > 0 ? pct(side.agentRssSamples, 50) : side.agentRssMb;
}

export function memoryTable(f: VsConsulFigures): string {
  const samples = Math.min(f.ours.agentRssSamples.length, f.consul.agentRssSamples.length);
  return markdownTable(HEAD('MB, VmRSS'), [
    row(
      `agent serving the Envoy (ours: mesh-agent run; Consul: the client agent), median of ${samples} readings every 0.5 s over the flips and 5 s after`,
      agentRss(f.ours),
      agentRss(f.consul),
      mb,
    ),
    row('(info) the same, one reading after the flips', f.ours.agentRssMb, f.consul.agentRssMb, mb),
    row('(info) its Envoy', f.ours.envoyRssMb, f.consul.envoyRssMb, mb),
    ['(info) the Consul dev server (the catalog of both)', '-', mb(f.consulServerRssMb), '-'],
  ]);
}

export function nackTable(f: VsConsulFigures): string {
  const cell = (s: SideFigures) => `${s.rejected} (of ${s.rejectedStats} stats)`;
  return markdownTable(
    ['figure', 'ours', 'Consul', 'required'],
    [["Envoy's update_rejected after the run", cell(f.ours), cell(f.consul), '0 for both']],
  );
}

export interface TargetResult {
  target: string;
  value: string;
  met: boolean;
}

/** The issuance comparison's verdict (bench/lib/vs-consul-issuance.ts): ours / Consul's with its limit off. */
export interface IssuanceVerdict {
  ratio: number;
  met: boolean;
}

/** Issue 16's targets for propagation, memory and (when measured) issuance, checked on the figures of the run. */
export function targets(f: VsConsulFigures, issuance?: IssuanceVerdict): TargetResult[] {
  // Each propagation target on both measures: when Envoy applied the flip (its update_time) and when a poll showed it.
  const propagation = (label: string, of: (side: SideFigures) => number[]): TargetResult[] => {
    const p50 = pct(of(f.ours), 50);
    const p99 = pct(of(f.ours), 99);
    const consulP99 = pct(of(f.consul), 99);
    return [
      {
        target: `propagation p99: ours <= 0.25 x Consul's (${label})`,
        value: `${ms(p99)} ms vs ${ms(0.25 * consulP99)} ms (0.25 x ${ms(consulP99)})`,
        met: p99 <= 0.25 * consulP99,
      },
      { target: `propagation p50 <= 25 ms (${label})`, value: `${ms(p50)} ms`, met: p50 <= 25 },
      { target: `propagation p99 <= 50 ms (${label})`, value: `${ms(p99)} ms`, met: p99 <= 50 },
    ];
  };
  return [
    ...propagation("applied: Envoy's update_time", (side) => side.applied),
    ...propagation('shown: a config_dump poll', (side) => side.delays),
    {
      target: "agent RSS <= the Consul client agent's",
      value: `${mb(agentRss(f.ours))} MB vs ${mb(agentRss(f.consul))} MB`,
      met: agentRss(f.ours) <= agentRss(f.consul),
    },
    { target: 'agent RSS <= 70 MB', value: `${mb(agentRss(f.ours))} MB`, met: agentRss(f.ours) <= 70 },
    ...(issuance === undefined
      ? []
      : [{ target: "issuances/s: ours >= Consul's with its limit off", value: `${issuance.ratio.toFixed(2)}x`, met: issuance.met }]),
  ];
}

export function targetsTable(results: readonly TargetResult[]): string {
  return markdownTable(
    ['target', 'this run', 'result'],
    results.map((r) => [r.target, r.value, r.met ? 'met' : 'NOT met']),
  );
}

/** The README section body: command, date, load, every table (ours and the issuance tables given). */
export function reportSection(
  f: VsConsulFigures,
  o: { command: string; date: string; issuance: readonly string[]; issuanceNote: string; verdict?: IssuanceVerdict },
): string {
  return [
    `\`${o.command}\`, ${o.date}, load average (1 min) ${f.load.join(' / ')} (start / before the flips / end):`,
    '',
    '**Propagation**',
    '',
    propagationTable(f),
    '',
    '**Bytes pushed**',
    '',
    bytesTable(f),
    '',
    '**Ready time**',
    '',
    readyTable(f),
    '',
    '**Memory**',
    '',
    memoryTable(f),
    '',
    '**NACKs**',
    '',
    nackTable(f),
    '',
    ...(o.issuance.length === 0
      ? [`**Certificates**: ${o.issuanceNote}.`, '']
      : ['**Certificates**', '', ...o.issuance.flatMap((t) => [t, ''])]),
    '**Targets** (issue 16)',
    '',
    targetsTable(targets(f, o.verdict)),
  ].join('\n');
}

/** README text with the part between the markers replaced by `body`; throws when the markers are missing or out of order. */
export function replaceSection(readme: string, body: string): string {
  const start = readme.indexOf(SECTION_START);
  const end = readme.indexOf(SECTION_END);
  if (start < 0 || end < start) throw new Error(`bench/README.md has no "${SECTION_START}" ... "${SECTION_END}" markers`);
  return `${readme.slice(0, start + SECTION_START.length)}\n${body.trim()}\n${readme.slice(end)}`;
}
