/**
 * Workloads + CatalogView + the SVIDs we hold -> ProxyModel. Pure.
 *
 * What is left out, and reported as a model problem (status shows them; the
 * rest of the node keeps working):
 * - a workload whose SVID has not arrived yet (its listener would reference a
 *   secret Envoy cannot get, and must never come up without it), and the
 *   upstreams it calls;
 * - a workload or upstream whose port another one already uses.
 * Several local workloads may call the same service: each caller gets its own
 * upstream (own clusters and route, its own SVID as client certificate).
 * TrafficRoute/TrafficPolicy documents are resolved per upstream
 * (agent/model/traffic.ts); a service a route mirrors to that the caller does
 * not call itself becomes a `mirrorOnly` upstream (clusters only).
 * Catalog instances outside the mesh (no SPIFFE ID) cannot do mTLS and are
 * skipped; instances claiming an identity that may not serve the service
 * (secure naming, ./secure-naming.ts) are skipped and reported as a problem; instances with a warning check are healthy, critical ones are not
 * in the view at all.
 * With `capture` (transparent proxy, ./capture.ts), the caller gets a
 * `captureOnly` upstream for every mesh service it does not call explicitly
 * (a mirror-only one is widened to it), and the model's capture block lists
 * the filter chains by destination and the workloads captured inbound.
 * Tracing: agent.yaml's (`tracing`) when set, else the MeshTelemetry policy's
 * (./mesh-telemetry.ts).
 */
import type { PolicyDocument } from '../../lib/policy/schema.js';
import type { CatalogInstance, CatalogView } from '../discovery/catalog-view.js';
import type { Workload } from '../workloads/workload.js';
import { type CaptureInput, type CaptureService, captureCaller, captureChains, inboundCaptured } from './capture.js';
import { inboundPolicy, isEmptyInboundPolicy } from './inbound-policy.js';
import { resolveTracing } from './mesh-telemetry.js';
import type { BuiltUpstream, ModelMemo } from './model-memo.js';
import {
  MESH_PROTOCOLS,
  type MeshProtocol,
  type ModelCapture,
  type ModelTracing,
  type ModelUpstream,
  type ModelWorkload,
  type ProxyModel,
} from './proxy-model.js';
import { acceptedIdentities, partitionByIdentity, refusedReason } from './secure-naming.js';
import { mirroredServices, resolveTraffic, toModelInstance } from './traffic.js';

export interface ModelInput {
  readonly nodeName: string;
  readonly trustDomain: string;
  readonly workloads: readonly Workload[];
  readonly view: CatalogView;
  /** SPIFFE IDs we hold an SVID for. */
  readonly svids: ReadonlySet<string>;
  /** Validated mesh policy documents that concern this node (agent/policy). Absent: none. */
  readonly policies?: readonly PolicyDocument[];
  /** This node's zone, for locality-aware load balancing. */
  readonly zone?: string;
  /** The access log file (ProxyModel.accessLogPath). */
  readonly accessLogPath?: string;
  /** The agent's accessLog.enabled: workloads whose file says nothing get an access log. */
  readonly accessLogDefault?: boolean;
  /** Distributed tracing from agent.yaml; absent: the MeshTelemetry policy's, if any (ProxyModel.tracing). */
  readonly tracing?: ModelTracing;
  /** Transparent proxy (agent config transparentProxy.enabled); absent: capture off. */
  readonly capture?: CaptureInput;
  /** The upstreams of the previous builds, reused where their inputs did not change (./model-memo.ts); the model is the same without it. */
  readonly memo?: ModelMemo;
}

export interface ModelProblem {
  readonly workload: string;
  /**
   * inbound: the workload's own listener is left out; upstream: one of its upstreams is; policy: a policy resource is not applied;
   * capture: a destination or workload is left out of the capture listeners (the rest of them still work).
   */
  readonly part: 'inbound' | 'upstream' | 'policy' | 'capture';
  readonly reason: string;
}

export interface BuiltModel {
  readonly model: ProxyModel;
  readonly problems: readonly ModelProblem[];
  /** Catalog instances skipped per upstream service: not in the mesh, or claiming an identity that may not serve it. */
  readonly skippedInstances: Readonly<Record<string, number>>;
  /** Where model.tracing comes from: `agent.yaml` or `MeshTelemetry/<name>`; absent: no tracing. */
  readonly tracingSource?: string;
}

function toProtocol(value: string | undefined): MeshProtocol {
  return (MESH_PROTOCOLS as readonly (string | undefined)[]).includes(value) ? (value as MeshProtocol) : 'tcp';
}

export function buildModel(input: ModelInput): BuiltModel {
  const problems: ModelProblem[] = [];
  const ports = new Map<number, string>();
  const claim = (port: number, owner: string): string | undefined => {
    const holder = ports.get(port);
    if (holder !== undefined) return holder;
    ports.set(port, owner);
    return undefined;
  };

  // The capture listeners' ports go first: a workload or upstream on one of them is left out, not the capture.
  if (input.capture !== undefined) {
    claim(input.capture.outboundPort, 'the outbound capture listener');
    claim(input.capture.inboundPort, 'the inbound capture listener');
  }
  const sorted = [...input.workloads].sort((a, b) => (a.name < b.name ? -1 : 1));
  const workloads: ModelWorkload[] = [];
  for (const w of sorted) {
    if (!input.svids.has(w.spiffeId)) {
      problems.push({ workload: w.name, part: 'inbound', reason: `waiting for its SVID (${w.spiffeId})` });
      continue;
    }
    const holder = claim(w.meshPort, `workload ${w.name}`);
    if (holder !== undefined) {
      problems.push({ workload: w.name, part: 'inbound', reason: `mesh port ${w.meshPort} is already used by ${holder}` });
      continue;
    }
    const inbound = inboundPolicy(input.policies ?? [], w);
    for (const s of inbound.shadowed) problems.push({ workload: w.name, part: 'policy', reason: `policy ${s} is not applied` });
    workloads.push({
      name: w.name,
      protocol: w.protocol,
      appPort: w.port,
      meshPort: w.meshPort,
      spiffeId: w.spiffeId,
      ...(isEmptyInboundPolicy(inbound.policy) ? {} : { inbound: inbound.policy }),
      ...((w.accessLog ?? input.accessLogDefault) === true ? { accessLog: true as const } : {}),
    });
  }

  const included = new Set(workloads.map((w) => w.name));
  const skipped: Record<string, number> = {};
  const upstreams: ModelUpstream[] = [];
  const policies = input.policies ?? [];
  /** Catalog instances of an upstream that secure naming kept, by caller and service (the capture chains use them). */
  const keptOf = new Map<string, readonly CatalogInstance[]>();
  const makeUpstream = (
    caller: string,
    namespace: string,
    service: string,
    localPort: number,
    only: 'mirrorOnly' | 'captureOnly' | undefined,
  ): BuiltUpstream => {
    const all = input.view.services[service]?.instances ?? [];
    const inMesh = all.filter((i) => i.spiffeId !== '');
    // Secure naming: only instances claiming an identity that policy (or the default rule) lets serve the service.
    const accepted = acceptedIdentities(policies, input.trustDomain, service, namespace);
    const { kept, refused } = partitionByIdentity(accepted, inMesh);
    const traffic = resolveTraffic(policies, service, kept, input.zone);
    const upstream: ModelUpstream = {
      service,
      localPort,
      // With no instance yet, a TrafficRoute with HTTP rules says the service speaks HTTP.
      protocol: toProtocol(kept[0]?.protocol ?? (traffic?.route?.http !== undefined ? 'http' : undefined)),
      workload: caller,
      instances: kept.map(toModelInstance),
      acceptedIdentities: accepted.patterns,
      ...(traffic === undefined ? {} : { traffic }),
      ...(only === undefined ? {} : { [only]: true }),
    };
    return {
      upstream,
      skipped: all.length - kept.length,
      ...(refused.length > 0 ? { refused: refusedReason(service, namespace, accepted, refused) } : {}),
      kept,
    };
  };
  const memo = input.memo;
  memo?.begin({ policies, trustDomain: input.trustDomain, zone: input.zone });
  const upstreamOf = (
    caller: string,
    namespace: string,
    service: string,
    localPort: number,
    only?: 'mirrorOnly' | 'captureOnly',
  ): ModelUpstream => {
    const make = () => makeUpstream(caller, namespace, service, localPort, only);
    const built =
      memo === undefined
        ? make()
        : memo.upstream(`${caller}\0${namespace}\0${service}\0${localPort}\0${only ?? ''}`, input.view.services[service], make);
    if (built.skipped > 0) skipped[service] = built.skipped;
    if (built.refused !== undefined) problems.push({ workload: caller, part: 'upstream', reason: built.refused });
    keptOf.set(`${caller}\0${service}`, built.kept);
    return built.upstream;
  };
  for (const w of sorted) {
    if (!included.has(w.name)) continue;
    const called = new Set<string>();
    const mine: ModelUpstream[] = [];
    for (const u of w.upstreams) {
      if (called.has(u.service)) {
        problems.push({ workload: w.name, part: 'upstream', reason: `upstream ${u.service}: listed twice (port ${u.localPort} left out)` });
        continue;
      }
      const holder = claim(u.localPort, `upstream ${u.service} of ${w.name}`);
      if (holder !== undefined) {
        problems.push({
          workload: w.name,
          part: 'upstream',
          reason: `upstream ${u.service}: local port ${u.localPort} is already used by ${holder}`,
        });
        continue;
      }
      called.add(u.service);
      mine.push(upstreamOf(w.name, u.namespace, u.service, u.localPort));
    }
    const mirrors = new Set(mine.flatMap((u) => mirroredServices(u.traffic?.route)).filter((s) => !called.has(s)));
    for (const service of [...mirrors].sort()) {
      // The agent starts watching it once this model names it (DataPlane.extraServices).
      if (input.view.services[service] === undefined)
        problems.push({
          workload: w.name,
          part: 'upstream',
          reason: `mirror target ${service} is not in the catalog view yet; its copies go nowhere until it is`,
        });
      mine.push(upstreamOf(w.name, w.namespace, service, 0, 'mirrorOnly'));
    }
    upstreams.push(...mine);
  }

  const { tracing, source: tracingSource } = resolveTracing(input.tracing, policies);
  let capture: ModelCapture | undefined;
  if (input.capture !== undefined) {
    const chosen = captureCaller(sorted, input.capture);
    let caller = chosen.name;
    if (chosen.problem !== undefined) problems.push({ workload: '', part: 'capture', reason: chosen.problem });
    if (caller !== '' && !included.has(caller)) {
      problems.push({
        workload: caller,
        part: 'capture',
        reason: `captured calls present ${caller}'s SVID, which is not in the data plane yet; until it is, they reach no mesh service`,
      });
      caller = '';
    }
    const services: CaptureService[] = [];
    const callerFile = sorted.find((w) => w.name === caller);
    if (callerFile !== undefined) {
      for (const service of Object.keys(input.view.services).sort()) {
        if (!(input.view.services[service]?.instances ?? []).some((i) => i.spiffeId !== '')) continue;
        const at = upstreams.findIndex((u) => u.workload === caller && u.service === service);
        const existing = upstreams[at];
        if (existing === undefined) upstreams.push(upstreamOf(caller, callerFile.namespace, service, 0, 'captureOnly'));
        else if (existing.mirrorOnly === true) {
          // Mirrored to and now also called: the route config it lacked comes with captureOnly.
          const { mirrorOnly: _, ...rest } = existing;
          upstreams[at] = { ...rest, captureOnly: true };
        }
        services.push({ service, instances: keptOf.get(`${caller}\0${service}`) ?? [] });
      }
    }
    const chains = captureChains(services, input.capture.outboundPort);
    for (const reason of chains.problems) problems.push({ workload: caller, part: 'capture', reason });
    const inbound = inboundCaptured(workloads, sorted, input.capture);
    for (const p of inbound.problems) problems.push({ ...p, part: 'capture' });
    capture = {
      outboundPort: input.capture.outboundPort,
      inboundPort: input.capture.inboundPort,
      ipv6: input.capture.ipv6,
      policy: input.capture.policy,
      caller,
      chains: chains.chains,
      inboundWorkloads: inbound.names,
    };
  }

  memo?.commit();
  return {
    model: {
      node: { name: input.nodeName },
      trustDomain: input.trustDomain,
      workloads,
      upstreams,
      ...(input.accessLogPath === undefined ? {} : { accessLogPath: input.accessLogPath }),
      ...(tracing === undefined ? {} : { tracing }),
      ...(capture === undefined ? {} : { capture }),
    },
    problems,
    skippedInstances: skipped,
    ...(tracingSource === undefined ? {} : { tracingSource }),
  };
}
