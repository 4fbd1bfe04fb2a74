/**
 * The ClusterLoadAssignment of an upstream cluster: one endpoint per instance
 * at its mesh port, weighted, HEALTHY or UNHEALTHY. Sorted by address and port
 * so the catalog's order does not change the content hash.
 */
import type { ModelUpstream } from '../../model/proxy-model.js';
import { outboundClusterName } from '../names.js';
import { socketAddress, type XdsResource } from './common.js';

export function buildEndpoints(upstream: ModelUpstream): XdsResource {
  const instances = [...upstream.instances].sort((a, b) =>
    a.address === b.address ? a.meshPort - b.meshPort : a.address < b.address ? -1 : 1,
  );
  const lbEndpoints = instances.map((i) => ({
    endpoint: { address: socketAddress(i.address, i.meshPort) },
    health_status: i.healthy ? 'HEALTHY' : 'UNHEALTHY',
    load_balancing_weight: { value: Math.max(1, Math.floor(i.weight)) },
  }));
  return {
    cluster_name: outboundClusterName(upstream.service),
    endpoints: lbEndpoints.length === 0 ? [] : [{ lb_endpoints: lbEndpoints }],
  };
}
