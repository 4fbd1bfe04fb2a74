/**
 * The input of the agent's status document (buildStatus) for node vm1 with
 * nothing going on: connected to Consul in agent mode, no workloads, an empty
 * catalog view. Tests of the status document, its rendering and its server
 * override the parts they look at.
 */
import type { DataPlaneStatus } from '../../agent/dataplane/data-plane.js';
import { makeView } from '../../agent/discovery/catalog-view.js';
import type { StatusInput } from '../../agent/status/status.js';
import { idleAdsStatus } from '../../agent/xds/server/ads-telemetry.js';

export function statusInput(overrides: Partial<StatusInput> = {}): StatusInput {
  return {
    node: 'vm1',
    consulMode: 'agent',
    consulAddress: 'c:1',
    connection: 'connected',
    workloads: [],
    fileErrors: [],
    registrations: [],
    view: makeView(1, []),
    watches: [],
    ...overrides,
  };
}

/** A data plane with an external Envoy, no workload, no xDS stream, a ready node SVID; tests add what they look at. */
export function idleDataPlaneStatus(overrides: Partial<DataPlaneStatus> = {}): DataPlaneStatus {
  return {
    envoy: { state: 'external' },
    xds: idleAdsStatus('/run/ads.sock'),
    modelProblems: [],
    upstreams: [],
    serving: [],
    identity: {
      node: { spiffeId: 'spiffe://example.org/mesh/node/vm1', failures: 0, state: 'ready' },
      workloads: [],
      bundle: { sequence: 1, roots: 1 },
      controlPlane: { address: 'cp:1', state: 'connected' },
    },
    ...overrides,
  };
}
