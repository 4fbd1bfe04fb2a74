/** The document GET /status returns, built from the agent's parts. Pure. */

import type { ChangeTiming } from '../dataplane/change-timing.js';
import type { DataPlaneStatus } from '../dataplane/data-plane.js';
import type { DataPlanePolicyStatus } from '../dataplane/policy-status.js';
import type { CatalogView } from '../discovery/catalog-view.js';
import type { WatchState } from '../discovery/catalog-watch.js';
import type { ConnectionState, RegistrationState } from '../discovery/registrar.js';
import type { IdentityState, SvidSource } from '../identity/identity-status.js';
import type { ConfigFileStatus } from '../run/config-reload.js';
import type { CaptureStatus } from '../tproxy/capture-status.js';
import type { CheckResult } from '../workloads/health-check.js';
import type { Workload, WorkloadFileError } from '../workloads/workload.js';

export interface StatusInput {
  node: string;
  consulMode: 'agent' | 'catalog';
  consulAddress: string;
  connection: ConnectionState;
  workloads: readonly Workload[];
  fileErrors: readonly WorkloadFileError[];
  registrations: readonly RegistrationState[];
  /** Catalog mode: the agent's own check results by workload name. */
  checks?: ReadonlyMap<string, CheckResult>;
  view: CatalogView;
  watches: readonly WatchState[];
  dataPlane?: DataPlaneStatus;
  /** Traffic capture (transparentProxy); absent when it is not enabled. */
  capture?: CaptureStatus;
  /** The agent process (pid, uptime, memory); left out in unit tests. */
  process?: NonNullable<StatusDocument['agent']>;
  /** For "expires soon" checks. */
  now?: number;
  /** The agent configuration file: loaded, or its latest reload rejected (agent/run/config-reload.ts). */
  config?: ConfigFileStatus;
  /**
   * 'failing': the upstream rows of failing watches only (what problems need).
   * The status report to the control plane reads no upstream rows, and at 200
   * upstreams with their endpoints every row was about 150 KB of garbage per
   * report, one report per change. Default 'all'.
   */
  upstreamRows?: 'all' | 'failing';
}

export interface StatusDocument {
  node: string;
  consul: { mode: string; address: string; state: ConnectionState };
  workloads: Array<{
    name: string;
    file: string;
    spiffeId: string;
    port: number;
    meshPort: number;
    registration: string;
    error?: string;
    check?: string;
    svid?: { state: string; serial?: string; notAfter?: string; nextRenewalAt?: string; error?: string; source?: SvidSource };
    /** "serving" (Envoy serves its mesh listener), or why not; the mesh listener check in Consul says the same. */
    dataPlane?: string;
    /** Present only when the mesh port also accepts plaintext: the mode and the PeerAuthentication resource. */
    mtls?: { mode: 'permissive'; policy: string };
  }>;
  workloadErrors: Array<{ file: string; field: string; reason: string; code: 'MESH_E_WORKLOAD_INVALID' }>;
  upstreams: Array<{
    service: string;
    instances: number;
    source: string;
    watch: string;
    error?: string;
    localPort?: number;
    caller?: string;
    /** Endpoints Envoy gets (mesh instances). */
    endpoints?: number;
  }>;
  catalogVersion: number;
  /** Upstreams left out of Envoy's configuration (a port conflict, a second local caller, impostor instances), and policies not applied. */
  upstreamProblems?: Array<{ workload: string; reason: string }>;
  controlPlane?: { address: string; state: string; lastError?: string; bundleRoots: number; bundleSequence: number };
  nodeSvid?: { state: string; serial?: string; notAfter?: string; error?: string; source?: SvidSource };
  /** The mesh policy in force: its revision and where it came from ('controlplane', 'disk' or 'none'). */
  policy?: { revision: number; origin: string; connected: boolean; lastError?: string; receivedAt?: string };
  envoy?: Record<string, unknown> & { state: string };
  xds?: {
    socket: string;
    snapshotVersion?: string;
    lastError?: string;
    streams: Array<{ id: number; api: string; node: string }>;
    /** Responses, bytes and resources pushed, ACKs and NACKs received, per API since the agent started. */
    counters: Record<
      'sotw' | 'delta',
      { responses: number; bytes: number; resources: number; removed: number; acks: number; nacks: number }
    >;
    types: Array<{ type: string; ackedVersion?: string; ackedAt?: string; lastNack?: { version: string; detail: string; at: string } }>;
    /** The latest catalog view's way to Envoy: its arrival, then ms to the rebuild, push, snapshot served, ACK (agent/dataplane/change-timing.ts). */
    lastChange?: Omit<ChangeTiming, 'at'> & { at: string };
  };
  /** What the data plane builds from; `policy`: per policy resource, applied or why not (docs/reference/policy-status.md). */
  dataPlane?: { policy: DataPlanePolicyStatus };
  /** Distributed tracing in force; source: `agent.yaml` or `MeshTelemetry/<name>` (agent.yaml wins). Absent: off. */
  tracing?: { provider: string; address: string; samplingPercent: number; source: string };
  /** Traffic capture (transparentProxy.enabled): state, rules expected vs installed, drift, repairs. */
  transparentProxy?: CaptureStatus;
  /** The configuration file: state 'rejected' when the latest reload failed (the agent runs with the previous one). */
  config?: {
    file: string;
    state: string;
    lastReloadAt?: string;
    error?: { code: string; message: string; issues?: ReadonlyArray<{ path: string; message: string }> };
    restartNeeded?: readonly string[];
    envoy?: string;
  };
  /** The agent process itself. */
  agent?: { pid: number; uptimeSeconds: number; memoryMb: { rss: number; heapUsed: number; heapTotal: number; external: number } };
  /** False when something needs attention; problems says what. `mesh-agent status` exits 1 then. */
  healthy: boolean;
  problems: string[];
}

const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());

/**
 * The xds section of the status document: the ADS streams, the counters, what
 * Envoy acknowledged and the latest change's way through the agent. Also
 * answered alone (GET /status/xds), for readers that poll it after each change
 * and need none of the rest.
 */
export function xdsSection(x: DataPlaneStatus['xds']): NonNullable<StatusDocument['xds']> {
  return {
    socket: x.socket,
    ...(x.snapshotVersion === undefined ? {} : { snapshotVersion: x.snapshotVersion.slice(0, 12) }),
    ...(x.lastError === undefined ? {} : { lastError: x.lastError }),
    streams: x.streams.map((s) => ({ id: s.id, api: s.api, node: s.node })),
    counters: { sotw: { ...x.counters.sotw }, delta: { ...x.counters.delta } },
    types: x.types.map((t) => ({
      type: t.type,
      ...(t.ackedVersion === undefined ? {} : { ackedVersion: t.ackedVersion.slice(0, 12) }),
      ...(t.ackedAt === undefined ? {} : { ackedAt: iso(t.ackedAt) }),
      ...(t.lastNack === undefined
        ? {}
        : { lastNack: { version: t.lastNack.version.slice(0, 12), detail: t.lastNack.detail, at: iso(t.lastNack.at) ?? '' } }),
    })),
    ...(x.lastChange === undefined ? {} : { lastChange: { ...x.lastChange, at: iso(x.lastChange.at) ?? '' } }),
  };
}

export function buildStatus(input: StatusInput): StatusDocument {
  const regByName = new Map(input.registrations.map((r) => [r.name, r]));
  const watchBy = new Map(input.watches.map((w) => [w.service, w]));
  const dp = input.dataPlane;
  const ids = dp?.identity;
  const svidBy = new Map((ids?.workloads ?? []).map((w) => [w.spiffeId, w]));
  const servingBy = new Map((dp?.serving ?? []).map((s) => [s.workload, s]));
  /** Each upstream service's callers on this node (several local workloads may call one service). */
  const callersBy = new Map<string, NonNullable<typeof dp>['upstreams'][number][]>();
  for (const u of dp?.upstreams ?? []) {
    const list = callersBy.get(u.service);
    if (list === undefined) callersBy.set(u.service, [u]);
    else list.push(u);
  }
  const callersOf = (service: string) => callersBy.get(service) ?? [];
  const plaintextBy = new Map((dp?.plaintextAccepted ?? []).map((p) => [p.workload, p.policy]));
  const doc: StatusDocument = {
    node: input.node,
    consul: { mode: input.consulMode, address: input.consulAddress, state: input.connection },
    workloads: input.workloads.map((w) => {
      const reg = regByName.get(w.name);
      const check = input.checks?.get(w.name);
      return {
        name: w.name,
        file: w.file,
        spiffeId: w.spiffeId,
        port: w.port,
        meshPort: w.meshPort,
        registration: reg?.state ?? 'pending',
        ...(reg?.error === undefined ? {} : { error: reg.error }),
        // The registration's health is the worst of its checks (with the mesh listener check); else the agent's own result.
        ...(reg?.health !== undefined ? { check: reg.health } : check !== undefined ? { check: check.status } : {}),
        ...(dp === undefined
          ? {}
          : {
              svid: svidSummary(svidBy.get(w.spiffeId)),
              dataPlane: servingBy.get(w.name)?.serving === false ? (servingBy.get(w.name)?.reason ?? '') : 'serving',
            }),
        ...(plaintextBy.has(w.name) ? { mtls: { mode: 'permissive' as const, policy: plaintextBy.get(w.name) ?? '' } } : {}),
      };
    }),
    workloadErrors: input.fileErrors.map((e) => ({ ...e, code: 'MESH_E_WORKLOAD_INVALID' as const })),
    // One row per service and caller: each caller has its own clusters.
    upstreams: [...new Set([...input.watches.map((w) => w.service)])].sort().flatMap((service) => {
      const watch = watchBy.get(service);
      if (input.upstreamRows === 'failing' && watch?.error === undefined) return [];
      const view = input.view.services[service];
      const row = {
        service,
        instances: view?.instances.length ?? 0,
        source: view?.source ?? 'none',
        watch: watch?.error !== undefined ? 'failing' : watch?.healthy ? 'ok' : 'starting',
        ...(watch?.error === undefined ? {} : { error: watch.error }),
      };
      const callers = callersOf(service);
      if (callers.length === 0) return [row];
      return callers.map((u) => ({ ...row, localPort: u.localPort, caller: u.caller, endpoints: u.endpoints }));
    }),
    catalogVersion: input.view.version,
    ...(input.capture === undefined ? {} : { transparentProxy: input.capture }),
    ...(input.process === undefined ? {} : { agent: input.process }),
    ...(input.config === undefined ? {} : { config: configSummary(input.config) }),
    healthy: true,
    problems: [],
  };
  if (dp !== undefined) {
    if (ids !== undefined) {
      doc.controlPlane = {
        address: ids.controlPlane.address,
        state: ids.controlPlane.state,
        ...(ids.controlPlane.lastError === undefined ? {} : { lastError: ids.controlPlane.lastError }),
        bundleRoots: ids.bundle.roots,
        bundleSequence: ids.bundle.sequence,
      };
      doc.nodeSvid = svidSummary(ids.node);
    }
    const upstreamProblems = dp.modelProblems.filter((p) => p.part !== 'inbound').map((p) => ({ workload: p.workload, reason: p.reason }));
    if (upstreamProblems.length > 0) doc.upstreamProblems = upstreamProblems;
    if (dp.policy !== undefined) doc.dataPlane = { policy: dp.policy };
    if (dp.tracing !== undefined) doc.tracing = { ...dp.tracing };
    const ps = dp.policySource;
    if (ps !== undefined)
      doc.policy = {
        revision: ps.revision,
        origin: ps.origin,
        connected: ps.connected,
        ...(ps.lastError === undefined ? {} : { lastError: ps.lastError }),
        ...(ps.receivedAt === undefined ? {} : { receivedAt: iso(ps.receivedAt) }),
      };
    doc.envoy = dp.envoy;
    doc.xds = xdsSection(dp.xds);
  }
  doc.problems = statusProblems(doc, input.now ?? Date.now());
  doc.healthy = doc.problems.length === 0;
  return doc;
}

function svidSummary(state: IdentityState | undefined): {
  state: string;
  serial?: string;
  notAfter?: string;
  nextRenewalAt?: string;
  error?: string;
  source?: SvidSource;
} {
  if (state === undefined) return { state: 'pending' };
  return {
    state: state.state,
    ...(state.serial === undefined ? {} : { serial: state.serial }),
    ...(state.notAfter === undefined ? {} : { notAfter: iso(state.notAfter) }),
    ...(state.nextRenewalAt === undefined ? {} : { nextRenewalAt: iso(state.nextRenewalAt) }),
    ...(state.lastError === undefined ? {} : { error: state.lastError }),
    ...(state.source === undefined ? {} : { source: state.source }),
  };
}

function configSummary(c: ConfigFileStatus): NonNullable<StatusDocument['config']> {
  const { lastReloadAt, ...rest } = c;
  return { ...rest, ...(lastReloadAt === undefined ? {} : { lastReloadAt: iso(lastReloadAt) }) };
}

/** Envoy's NACK details span lines; a problem is one line. */
const oneLine = (text: string) => text.replace(/\s+/g, ' ').trim();

/** Everything that needs an operator's attention, one sentence each. Pure. */
export function statusProblems(doc: StatusDocument, now: number): string[] {
  const out: string[] = [];
  if (doc.consul.state === 'unreachable') out.push(`Consul at ${doc.consul.address} is unreachable`);
  for (const e of doc.workloadErrors) out.push(`workload file ${e.file}: ${e.field === '' ? '' : `${e.field}: `}${e.reason}`);
  for (const w of doc.workloads) {
    if (w.registration === 'rejected') out.push(`workload ${w.name}: Consul rejected its registration${w.error ? `: ${w.error}` : ''}`);
    if (w.check === 'critical') out.push(`workload ${w.name}: its check is critical`);
    if (w.svid !== undefined && w.svid.state === 'failing')
      out.push(`workload ${w.name}: cannot get its SVID${w.svid.error ? `: ${w.svid.error}` : ''}`);
    if (w.svid?.notAfter !== undefined && Date.parse(w.svid.notAfter) <= now) out.push(`workload ${w.name}: its SVID expired`);
    if (w.dataPlane !== undefined && w.dataPlane !== 'serving') out.push(`workload ${w.name}: not serving: ${w.dataPlane}`);
  }
  for (const p of doc.upstreamProblems ?? []) out.push(`workload ${p.workload}: ${p.reason}`);
  for (const u of doc.upstreams)
    if (u.watch === 'failing') out.push(`upstream ${u.service}: catalog watch failing${u.error ? `: ${u.error}` : ''}`);
  if (doc.controlPlane !== undefined && doc.controlPlane.state !== 'connected')
    out.push(
      `control plane ${doc.controlPlane.address} ${doc.controlPlane.state}${doc.controlPlane.lastError ? `: ${doc.controlPlane.lastError}` : ''}`,
    );
  for (const r of doc.dataPlane?.policy.resources ?? [])
    if (r.state === 'rolled-back' || r.state === 'rejected' || r.state === 'invalid')
      out.push(`policy ${r.kind}/${r.name} version ${r.version} ${r.state}${r.reason === undefined ? '' : `: ${oneLine(r.reason)}`}`);
  if (doc.nodeSvid?.notAfter !== undefined && Date.parse(doc.nodeSvid.notAfter) <= now) out.push('the node SVID expired');
  out.push(...captureProblems(doc.transparentProxy));
  if (doc.config?.state === 'rejected') {
    const fields = (doc.config.error?.issues ?? []).map((i) => `${i.path === '' ? '(document)' : i.path}: ${i.message}`).join('; ');
    out.push(
      `configuration ${doc.config.file}: reload rejected (${doc.config.error?.code ?? 'MESH_E_CONFIG_INVALID'}${fields === '' ? '' : `: ${oneLine(fields)}`}); running with the previous configuration`,
    );
  }
  if (doc.envoy !== undefined && doc.envoy.state !== 'running' && doc.envoy.state !== 'external') out.push(`Envoy is ${doc.envoy.state}`);
  if (doc.xds !== undefined) {
    if (doc.xds.lastError !== undefined) out.push(`the latest snapshot was refused: ${doc.xds.lastError}`);
    if (doc.xds.snapshotVersion !== undefined && doc.envoy !== undefined && doc.xds.streams.length === 0)
      out.push('Envoy is not connected to the ADS server');
    for (const t of doc.xds.types) {
      // A NACK after the latest ACK: Envoy runs an older configuration than the agent wants.
      if (t.lastNack !== undefined && (t.ackedAt === undefined || Date.parse(t.lastNack.at) >= Date.parse(t.ackedAt)))
        out.push(`Envoy rejected ${t.type} version ${t.lastNack.version}: ${t.lastNack.detail}`);
    }
  }
  return out;
}

/** Capture that needs attention: lifted (traffic bypasses the mesh), drift, a failure. */
export function captureProblems(c: CaptureStatus | undefined): string[] {
  if (c === undefined) return [];
  if (c.state === 'lifted')
    return [`CAPTURE LIFTED: ${c.warning ?? 'Envoy is not ready and failurePolicy is open; traffic bypasses the mesh'}`];
  if (c.state === 'failed') return [`capture failed${c.error === undefined ? '' : `: ${c.error.code}: ${oneLine(c.error.message)}`}`];
  if (c.state === 'drift')
    return [`capture rules drifted: ${c.drift.missing.length} missing, ${c.drift.unexpected.length} unexpected (being repaired)`];
  return [];
}
