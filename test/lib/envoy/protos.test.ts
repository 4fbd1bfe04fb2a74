import t from 'tap';
import { checkMessage, decodeMessage, encodeMessage, fromAny, toAny } from '../../../lib/envoy/protos.js';
import { TypeUrl, typeNameOf, typeUrlOf } from '../../../lib/envoy/type-urls.js';
import { isMeshError } from '../../../lib/errors.js';

const HCM = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';

const samples: Record<string, Record<string, unknown>> = {
  [TypeUrl.Listener]: {
    name: 'inbound:web',
    address: { socket_address: { address: '0.0.0.0', port_value: 15006 } },
    filter_chains: [
      {
        filters: [
          {
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': HCM,
              stat_prefix: 'inbound_web',
              codec_type: 'AUTO',
              rds: { route_config_name: 'inbound:web', config_source: { ads: {}, resource_api_version: 'V3' } },
              http_filters: [
                {
                  name: 'envoy.filters.http.router',
                  typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' },
                },
              ],
            },
          },
        ],
      },
    ],
  },
  [TypeUrl.Cluster]: {
    name: 'outbound:api',
    type: 'EDS',
    connect_timeout: { seconds: '5' },
    eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' } },
    lb_policy: 'LEAST_REQUEST',
  },
  [TypeUrl.ClusterLoadAssignment]: {
    cluster_name: 'outbound:api',
    endpoints: [
      {
        lb_endpoints: [
          {
            endpoint: { address: { socket_address: { address: '10.0.0.7', port_value: 15001 } } },
            health_status: 'HEALTHY',
            load_balancing_weight: { value: 3 },
          },
        ],
      },
    ],
  },
  [TypeUrl.RouteConfiguration]: {
    name: 'outbound:api',
    virtual_hosts: [
      {
        name: 'api',
        domains: ['*'],
        routes: [{ match: { prefix: '/' }, route: { cluster: 'outbound:api', timeout: { seconds: '15' } } }],
      },
    ],
  },
  [TypeUrl.Secret]: {
    name: 'spiffe://example.org/ns/default/sa/web',
    tls_certificate: {
      certificate_chain: { inline_string: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n' },
      private_key: { inline_string: '-----BEGIN PRIVATE KEY-----\nMIIC\n-----END PRIVATE KEY-----\n' },
    },
  },
};

for (const [typeUrl, sample] of Object.entries(samples)) {
  t.test(`toAny/fromAny round trip: ${typeNameOf(typeUrl)}`, async (t) => {
    const any = toAny(typeUrl, sample);
    t.equal(any.type_url, typeUrl);
    t.ok(any.value.length > 0, 'encodes to bytes');
    const back = fromAny(any);
    t.equal(back.typeUrl, typeUrl);
    t.same(back.value, sample, 'decoded object equals the input');
    t.same(toAny(typeUrl, back.value).value, any.value, 're-encoding gives the same bytes');
  });
}

t.test('toAny accepts a full type name as well as a type URL', async (t) => {
  const byName = toAny('envoy.config.cluster.v3.Cluster', { name: 'c' });
  t.equal(byName.type_url, TypeUrl.Cluster);
  t.equal(typeUrlOf('.envoy.config.cluster.v3.Cluster'), TypeUrl.Cluster);
});

t.test('unknown fields are rejected with their path', async (t) => {
  const err = t.throws(() => toAny(TypeUrl.Cluster, { name: 'c', conect_timeout: { seconds: '1' } }));
  t.ok(isMeshError(err, 'MESH_E_PROTO_UNKNOWN_FIELD'));
  t.match((err as Error).message, /conect_timeout/);

  const nested = t.throws(() =>
    checkMessage(TypeUrl.Listener, {
      filter_chains: [{ filters: [{ name: 'x', typed_config: { '@type': HCM, stat_prefx: 'a' } }] }],
    }),
  );
  t.ok(isMeshError(nested, 'MESH_E_PROTO_UNKNOWN_FIELD'));
  t.match((nested as unknown as MeshErrorLike).details, { path: 'filter_chains[0].filters[0].typed_config.stat_prefx' });
});

interface MeshErrorLike {
  details: Record<string, unknown>;
}

t.test('wrong shapes and enum values are rejected', async (t) => {
  const notArray = t.throws(() => encodeMessage(TypeUrl.Listener, { filter_chains: {} }));
  t.ok(isMeshError(notArray, 'MESH_E_PROTO_INVALID'));
  const badEnum = t.throws(() => encodeMessage(TypeUrl.Cluster, { type: 'EDSS' }));
  t.ok(isMeshError(badEnum, 'MESH_E_PROTO_INVALID'));
  t.match((badEnum as Error).message, /EDSS/);
  const scalarForMessage = t.throws(() => encodeMessage(TypeUrl.Cluster, { connect_timeout: '5s' }));
  t.ok(isMeshError(scalarForMessage, 'MESH_E_PROTO_INVALID'));
  const badMapValue = t.throws(() =>
    encodeMessage('envoy.config.core.v3.Metadata', { filter_metadata: { a: { fields: { x: { nul_value: 0 } } } } }),
  );
  t.ok(isMeshError(badMapValue, 'MESH_E_PROTO_UNKNOWN_FIELD'));
  const wrongScalar = t.throws(() => encodeMessage(TypeUrl.Cluster, { name: 42 }));
  t.ok(isMeshError(wrongScalar, 'MESH_E_PROTO_INVALID'));
});

t.test('unknown types are rejected', async (t) => {
  const err = t.throws(() => toAny('type.googleapis.com/envoy.config.nope.v3.Nope', {}));
  t.ok(isMeshError(err, 'MESH_E_PROTO_UNKNOWN_TYPE'));
  const notMessage = t.throws(() => decodeMessage('envoy.config.cluster.v3.Cluster.DiscoveryType', new Uint8Array()));
  t.ok(isMeshError(notMessage, 'MESH_E_PROTO_UNKNOWN_TYPE'));
});
