import t from 'tap';
import { clusterStatName, labelIndex } from '../../../agent/status/envoy-labels.js';
import { enrichEnvoyStats, formatSample, meshLabelsOf, parseSample } from '../../../agent/status/envoy-stats-merge.js';
import { webApiModel } from '../../support/web-api-model.js';

const TD = 'example.org';
const WEB = `spiffe://${TD}/ns/default/sa/web`;
const API = `spiffe://${TD}/ns/default/sa/api`;
const model = webApiModel(TD, { webApp: 8080, apiApp: 8081, webMesh: 18080, apiMesh: 18081, local: 9001 });

t.test('the label index of web -> api: outbound cluster and listener, inbound listeners and app clusters', async (t) => {
  const index = labelIndex(model);
  const outbound = { source_service: 'web', source_spiffe_id: WEB, destination_service: 'api', destination_spiffe_id: API };
  t.same(index.clusters.get('outbound_api@web'), outbound, "the cluster by the name Envoy's stats give it");
  t.same(index.prefixes.get('outbound_api_9001'), outbound, 'the outbound listener prefix');
  t.same(index.prefixes.get('inbound_api'), { destination_service: 'api', destination_spiffe_id: API });
  t.same(index.clusters.get('inbound_api_app'), { destination_service: 'api', destination_spiffe_id: API });
  t.same(index.prefixes.get('inbound_web'), { destination_service: 'web', destination_spiffe_id: WEB });
  t.equal(index.clusters.get('mesh-ads'), undefined, 'the ADS cluster belongs to no workload');
});

t.test('subset clusters and capture chains get the labels of their upstream; several allowed identities are joined', async (t) => {
  const base = model.upstreams[0];
  if (base === undefined) throw new Error('no upstream');
  const index = labelIndex({
    ...model,
    upstreams: [
      {
        ...base,
        acceptedIdentities: [`spiffe://${TD}/ns/prod/sa/api`, API],
        traffic: { subsets: [{ name: 'v2', instances: [] }] },
      },
    ],
    capture: {
      outboundPort: 15001,
      inboundPort: 15006,
      ipv6: false,
      policy: 'allow',
      caller: 'web',
      chains: [{ service: 'api', port: 8081, addresses: ['10.0.0.2'] }],
      inboundWorkloads: ['api'],
    },
  });
  const ids = `${API},spiffe://${TD}/ns/prod/sa/api`;
  t.equal(index.clusters.get(clusterStatName('outbound:api:v2@web'))?.destination_spiffe_id, ids, 'sorted, comma-separated');
  t.equal(index.prefixes.get('capture_outbound_api_8081')?.source_service, 'web');
  t.equal(index.prefixes.get('capture_inbound_api_mtls')?.destination_service, 'api');
  t.equal(index.prefixes.get('capture_outbound'), undefined, 'the capture listener itself carries no service');
});

t.test('parseSample and formatSample: labels with escapes, no labels, timestamps', async (t) => {
  const line = 'envoy_x{a="q\\"uote",b="back\\\\slash",c="new\\nline"} 12 1700000000000';
  const s = parseSample(line);
  t.same(s?.labels, [
    ['a', 'q"uote'],
    ['b', 'back\\slash'],
    ['c', 'new\nline'],
  ]);
  t.equal(s?.rest, '12 1700000000000');
  t.equal(s === undefined ? '' : formatSample(s), line, 'formats back to the same text');
  t.same(parseSample('envoy_server_live 1'), { name: 'envoy_server_live', labels: [], rest: '1' });
  t.equal(parseSample('envoy_bad{a="open} 1'), undefined, 'an unterminated value is not a sample');
  t.equal(parseSample('# TYPE envoy_x counter'), undefined);
});

t.test('enrichment: mesh labels and response_code added, existing labels kept, unknown scopes and comments untouched', async (t) => {
  const index = labelIndex(model);
  const text = [
    '# TYPE envoy_cluster_upstream_rq counter',
    'envoy_cluster_upstream_rq{envoy_response_code="200",envoy_cluster_name="outbound_api@web"} 3',
    'envoy_cluster_upstream_rq{envoy_response_code="200",envoy_cluster_name="mesh-ads"} 1',
    'envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="outbound_api@web",le="5"} 2',
    'envoy_http_downstream_rq_xx{envoy_response_code_class="2",envoy_http_conn_manager_prefix="inbound_api"} 3',
    'envoy_tcp_downstream_cx_total{envoy_tcp_prefix="inbound_web",destination_service="preset"} 1',
    'envoy_server_live 1',
    '',
  ].join('\n');
  const out = enrichEnvoyStats(text, index).split('\n');
  t.equal(out[0], '# TYPE envoy_cluster_upstream_rq counter');
  t.equal(
    out[1],
    `envoy_cluster_upstream_rq{envoy_response_code="200",envoy_cluster_name="outbound_api@web",source_service="web",source_spiffe_id="${WEB}",destination_service="api",destination_spiffe_id="${API}",response_code="200"} 3`,
  );
  t.equal(out[2], 'envoy_cluster_upstream_rq{envoy_response_code="200",envoy_cluster_name="mesh-ads",response_code="200"} 1');
  t.match(out[3], /le="5",source_service="web",.*destination_service="api",destination_spiffe_id=".*"} 2$/);
  t.match(out[4], /envoy_http_conn_manager_prefix="inbound_api",destination_service="api",destination_spiffe_id=".*sa\/api"} 3$/);
  t.equal(
    out[5],
    `envoy_tcp_downstream_cx_total{envoy_tcp_prefix="inbound_web",destination_service="preset",destination_spiffe_id="${WEB}"} 1`,
    'a label the series has is not overwritten',
  );
  t.equal(out[6], 'envoy_server_live 1');
  t.equal(out.length, 8, 'no line added or lost');
  t.same(meshLabelsOf([['other', 'x']], index), [], 'nothing for a series with no known scope');
});
