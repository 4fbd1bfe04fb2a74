/** Resource names are an API (Envoy stats, dashboards): this pins them. */
import t from 'tap';
import {
  identitySecretName,
  inboundListenerName,
  inboundRouteName,
  localAppClusterName,
  outboundClusterName,
  outboundListenerName,
  outboundRouteName,
  statPrefix,
  TRUST_BUNDLE_SECRET_NAME,
} from '../../../agent/xds/names.js';

t.test('names', async (t) => {
  t.equal(inboundListenerName('web'), 'inbound:web');
  t.equal(inboundRouteName('web'), 'inbound:web');
  t.equal(localAppClusterName('web'), 'inbound:web:app');
  t.equal(outboundListenerName('api', 9001), 'outbound:api:9001');
  t.equal(outboundClusterName('api'), 'outbound:api');
  t.equal(outboundRouteName('api'), 'outbound:api');
  t.equal(identitySecretName('spiffe://example.org/ns/default/sa/web'), 'spiffe://example.org/ns/default/sa/web');
  t.equal(TRUST_BUNDLE_SECRET_NAME, 'ROOTCA');
  t.equal(statPrefix('outbound:api-v2:9001'), 'outbound_api_v2_9001');
});
