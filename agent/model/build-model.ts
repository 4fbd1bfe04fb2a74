/**
 * Workloads + CatalogView + the SVIDs we hold -> ProxyModel. Pure.
 *
 * What is left out, and reported as a model problem (status shows them; the
 * rest of the node keeps working):
 * - a workload whose SVID has not arrived yet (its listener would reference a
 *   secret Envoy cannot get, and must never come up without it), and the
 *   upstreams it calls;
 * - a workload or upstream whose port another one already uses;
 * - a second local caller of the same service (one caller identity per service
 *   cluster for now).
 * Catalog instances outside the mesh (no SPIFFE ID) cannot do mTLS and are
 * skipped; instances claiming an identity that may not serve the service
 * (secure naming, ./secure-naming.ts) are skipped and reported as a problem; instances with a warning check are healthy, critical ones are not
 * in the view at all.
 */
import type { PolicyDocument } from '../../lib/policy/schema.js';
import type { CatalogView } from '../discovery/catalog-view.js';
import type { Workload } from '../workloads/workload.js';
import { inboundPolicy, isEmptyInboundPolicy } from './inbound-policy.js';
import {
  MESH_PROTOCOLS,
  type MeshProtocol,
  type ModelInstance,
  type ModelUpstream,
  type ModelWorkload,
  type ProxyModel,
} from './proxy-model.js';
import { acceptedIdentities, partitionByIdentity, refusedReason } from './secure-naming.js';

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
  /** The inbound access log file (ProxyModel.accessLogPath). */
  readonly accessLogPath?: string;
}

export interface ModelProblem {
  readonly workload: string;
  /** inbound: the workload's own listener is left out; upstream: one of its upstreams is; policy: a policy resource is not applied. */
  readonly part: 'inbound' | 'upstream' | 'policy';
  readonly reason: string;
}

export interface BuiltModel {
  readonly model: ProxyModel;
  readonly problems: readonly ModelProblem[];
  /** Catalog instances skipped per upstream service: not in the mesh, or claiming an identity that may not serve it. */
  readonly skippedInstances: Readonly<Record<string, number>>;
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
    });
  }

  const included = new Set(workloads.map((w) => w.name));
  const callers = new Map<string, string>();
  const skipped: Record<string, number> = {};
  const upstreams: ModelUpstream[] = [];
  for (const w of sorted) {
    if (!included.has(w.name)) continue;
    for (const u of w.upstreams) {
      const caller = callers.get(u.service);
      if (caller !== undefined && caller !== w.name) {
        problems.push({
          workload: w.name,
          part: 'upstream',
          reason: `upstream ${u.service}: already called by workload ${caller} (one local caller per service)`,
        });
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
      callers.set(u.service, w.name);
      const service = input.view.services[u.service];
      const all = service?.instances ?? [];
      const inMesh = all.filter((i) => i.spiffeId !== '');
      if (inMesh.length < all.length) skipped[u.service] = all.length - inMesh.length;
      // Secure naming: only instances claiming an identity policy allows to serve the service.
      const accepted = acceptedIdentities(input.policies ?? [], input.trustDomain, u.service, u.namespace);
      const { kept, refused } = partitionByIdentity(accepted, inMesh);
      if (refused.length > 0) {
        skipped[u.service] = (skipped[u.service] ?? 0) + refused.length;
        problems.push({ workload: w.name, part: 'upstream', reason: refusedReason(u.service, u.namespace, accepted, refused) });
      }
      const instances: ModelInstance[] = kept.map((i) => ({
        address: i.address,
        meshPort: i.meshPort,
        spiffeId: i.spiffeId,
        weight: Math.max(1, i.weight),
        healthy: true,
      }));
      upstreams.push({
        service: u.service,
        localPort: u.localPort,
        protocol: toProtocol(kept[0]?.protocol),
        workload: w.name,
        instances,
        acceptedIdentities: accepted.patterns,
      });
    }
  }

  return {
    model: {
      node: { name: input.nodeName },
      trustDomain: input.trustDomain,
      workloads,
      upstreams,
      ...(input.accessLogPath === undefined ? {} : { accessLogPath: input.accessLogPath }),
    },
    problems,
    skippedInstances: skipped,
  };
}
