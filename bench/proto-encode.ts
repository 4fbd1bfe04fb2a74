/**
 * bench/proto-encode: the cost of the shared basics on the hot path of every
 * snapshot build: SPIFFE ID parsing and toAny/fromAny of typical Envoy
 * resources. Prints a table; asserts nothing (targets are read, not timed in tests).
 *   npm run bench -- proto-encode
 */
import { envoyRoot, fromAny, toAny } from '../lib/envoy/protos.js';
import { TypeUrl } from '../lib/envoy/type-urls.js';
import { parseSpiffeId } from '../lib/spiffe-id.js';
import { formatTable, measure } from './lib/table.js';

const cluster = {
  name: 'outbound:api',
  type: 'EDS',
  connect_timeout: { seconds: '5' },
  eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' } },
};
const endpoints = {
  cluster_name: 'outbound:api',
  endpoints: [
    {
      lb_endpoints: Array.from({ length: 10 }, (_, i) => ({
        endpoint: { address: { socket_address: { address: `10.0.0.${i + 1}`, port_value: 15001 } } },
        health_status: 'HEALTHY',
      })),
    },
  ],
};

const loadStart = process.hrtime.bigint();
envoyRoot();
const loadMs = Number(process.hrtime.bigint() - loadStart) / 1e6;

const clusterAny = toAny(TypeUrl.Cluster, cluster);
const endpointsAny = toAny(TypeUrl.ClusterLoadAssignment, endpoints);
const rows: Array<Array<string | number>> = [];
const add = (name: string, fn: () => void) => {
  const r = measure(fn);
  rows.push([name, r.opsPerSec, r.meanUs]);
};
add('parseSpiffeId', () => parseSpiffeId('spiffe://example.org/ns/default/sa/web'));
add('toAny Cluster (EDS)', () => toAny(TypeUrl.Cluster, cluster));
add('toAny ClusterLoadAssignment x10', () => toAny(TypeUrl.ClusterLoadAssignment, endpoints));
add('fromAny Cluster', () => fromAny(clusterAny));
add('fromAny ClusterLoadAssignment x10', () => fromAny(endpointsAny));

process.stdout.write(`Envoy protos loaded in ${loadMs.toFixed(0)} ms (once per process)\n\n`);
process.stdout.write(`${formatTable(['operation', 'ops/s', 'mean µs'], rows)}\n`);
