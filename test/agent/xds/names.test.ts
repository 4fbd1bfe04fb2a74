/** Resource names are an API (Envoy stats, dashboards): this pins them. */
import t from 'tap';
import {
  identitySecretName,
  inboundListenerName,
  inboundRouteName,
  localAppClusterName,
  outboundClusterName,
  outboundEndpointsName,
  outboundListenerName,
  outboundRouteName,
  statPrefix,
  subsetClusterName,
  TRUST_BUNDLE_SECRET_NAME,
} from '../../../agent/xds/names.js';

t.test('names', async (t) => {
  t.equal(inboundListenerName('web'), 'inbound:web');
  t.equal(inboundRouteName('web'), 'inbound:web');
  t.equal(localAppClusterName('web'), 'inbound:web:app');
  t.equal(outboundListenerName('api', 9001), 'outbound:api:9001');
  t.equal(outboundClusterName('api', 'web'), 'outbound:api@web');
  t.equal(subsetClusterName('api', 'v2', 'web'), 'outbound:api:v2@web');
  t.equal(outboundEndpointsName('api'), 'outbound:api');
  t.equal(outboundEndpointsName('api', 'v2'), 'outbound:api:v2');
  t.equal(outboundRouteName('api', 'web'), 'outbound:api@web');
  t.equal(identitySecretName('spiffe://example.org/ns/default/sa/web'), 'spiffe://example.org/ns/default/sa/web');
  t.equal(TRUST_BUNDLE_SECRET_NAME, 'ROOTCA');
  t.equal(statPrefix('outbound:api-v2:9001'), 'outbound_api_v2_9001');
});
