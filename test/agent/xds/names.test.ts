/** Resource names are an API (Envoy stats, dashboards): this pins them. */
import t from 'tap';
import {
  BLACKHOLE_CLUSTER,
  CAPTURE_INBOUND_LISTENER,
  CAPTURE_OUTBOUND_LISTENER,
  captureInboundChainName,
  captureLoopChainName,
  captureOutboundChainName,
  identitySecretName,
  inboundListenerName,
  inboundRouteName,
  localAppClusterName,
  outboundClusterName,
  outboundEndpointsName,
  outboundListenerName,
  outboundRouteName,
  PASSTHROUGH_CLUSTER,
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
  t.equal(CAPTURE_OUTBOUND_LISTENER, 'capture:outbound');
  t.equal(CAPTURE_INBOUND_LISTENER, 'capture:inbound');
  t.equal(PASSTHROUGH_CLUSTER, 'capture:passthrough');
  t.equal(BLACKHOLE_CLUSTER, 'capture:blackhole');
  t.equal(captureOutboundChainName('api', 8080), 'capture:outbound:api:8080');
  t.equal(captureInboundChainName('api'), 'capture:inbound:api');
  t.equal(captureInboundChainName('api', 'plaintext'), 'capture:inbound:api:plaintext');
  t.equal(captureLoopChainName('outbound'), 'capture:outbound:loop');
  t.equal(statPrefix(PASSTHROUGH_CLUSTER), 'capture_passthrough');
  t.equal(statPrefix(BLACKHOLE_CLUSTER), 'capture_blackhole');
});
