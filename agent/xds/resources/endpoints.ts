/**
 * The ClusterLoadAssignment of an upstream service or of one of its subsets:
 * one endpoint per instance at its mesh port, weighted, HEALTHY or UNHEALTHY.
 * Sorted by address and port so the catalog's order does not change the
 * content hash. Shared by every caller of the service.
 *
 * Locality (TrafficPolicy `locality.preferLocalZone` with a known node zone):
 * the instances of the caller's zone form a locality at priority 0 (present
 * even when empty), the other zones each a locality at priority 1. Envoy sends
 * everything to priority 0 while it has healthy endpoints and fails over to
 * priority 1 when it has none; instances that go critical in Consul leave the
 * catalog view, hence priority 0.
 */
import type { ModelInstance, ModelUpstream } from '../../model/proxy-model.js';
import { outboundEndpointsName } from '../names.js';
import { socketAddress, type XdsResource } from './common.js';

/** The usual weight, one frozen object for all endpoints that have it (2,000 copies at 200 upstreams x 10). */
const WEIGHT_ONE: XdsResource = Object.freeze({ value: 1 });

function lbEndpoint(i: ModelInstance): XdsResource {
  const weight = Math.max(1, Math.floor(i.weight));
  return {
    endpoint: { address: socketAddress(i.address, i.meshPort) },
    health_status: i.healthy ? 'HEALTHY' : 'UNHEALTHY',
    load_balancing_weight: weight === 1 ? WEIGHT_ONE : { value: weight },
  };
}

function sorted(instances: readonly ModelInstance[]): ModelInstance[] {
  return [...instances].sort((a, b) => (a.address === b.address ? a.meshPort - b.meshPort : a.address < b.address ? -1 : 1));
}

function byZone(localZone: string, instances: readonly ModelInstance[]): XdsResource[] {
  const zones = new Map<string, ModelInstance[]>([[localZone, []]]);
  for (const i of instances) {
    const zone = i.zone ?? '';
    zones.set(zone, [...(zones.get(zone) ?? []), i]);
  }
  const others = [...zones.keys()].filter((z) => z !== localZone).sort();
  return [localZone, ...others].map((zone) => ({
    locality: { zone },
    lb_endpoints: sorted(zones.get(zone) ?? []).map(lbEndpoint),
    priority: zone === localZone ? 0 : 1,
  }));
}

/** subset: one of the route's subsets (its instances), or all instances of the service. */
export function buildEndpoints(upstream: ModelUpstream, subset?: string): XdsResource {
  const instances = subset === undefined ? upstream.instances : (upstream.traffic?.subsets.find((s) => s.name === subset)?.instances ?? []);
  const localZone = upstream.traffic?.localZone;
  const lbEndpoints = sorted(instances).map(lbEndpoint);
  return {
    cluster_name: outboundEndpointsName(upstream.service, subset),
    endpoints: localZone !== undefined ? byZone(localZone, instances) : lbEndpoints.length === 0 ? [] : [{ lb_endpoints: lbEndpoints }],
  };
}
