/** SAN matchers of outbound clusters come from the accepted identities: exact IDs, or anchored one-segment regexes. */
import t from 'tap';
import { buildOutboundCluster } from '../../../agent/xds/resources/outbound-cluster.js';
import { identityPatternRegex, NO_PEER_SAN, peerSanMatchers } from '../../../agent/xds/resources/peer-sans.js';
import { checkMessage } from '../../../lib/envoy/protos.js';
import { TypeUrl } from '../../../lib/envoy/type-urls.js';
import { matchGolden } from '../../support/golden.js';
import { API_ID, WEB_ID } from './fixtures/model.js';

t.test('exact IDs and patterns', async (t) => {
  t.same(peerSanMatchers([API_ID, 'spiffe://example.org/ns/*/sa/api']), [
    { san_type: 'URI', matcher: { exact: API_ID } },
    { san_type: 'URI', matcher: { safe_regex: { regex: '^spiffe://example\\.org/ns/[^/]+/sa/api$' } } },
  ]);
  t.same(peerSanMatchers([]), [{ san_type: 'URI', matcher: { exact: NO_PEER_SAN } }], 'never an empty list');
  t.equal(identityPatternRegex('spiffe://a.b/x/*/*'), '^spiffe://a\\.b/x/[^/]+/[^/]+$');
});

t.test('the regex matches what the pattern matches', async (t) => {
  const re = new RegExp(identityPatternRegex('spiffe://example.org/ns/*/sa/api'));
  t.ok(re.test('spiffe://example.org/ns/prod/sa/api'));
  t.notOk(re.test('spiffe://example.org/ns/a/b/sa/api'));
  t.notOk(re.test('spiffe://exampleXorg/ns/prod/sa/api'));
  t.notOk(re.test('spiffe://example.org/ns/prod/sa/api/x'));
});

t.test('an outbound cluster with a ServiceIdentity pattern (golden)', async (t) => {
  const cluster = buildOutboundCluster(
    {
      service: 'api',
      localPort: 9001,
      protocol: 'http',
      workload: 'web',
      instances: [{ address: '10.0.0.5', meshPort: 15002, spiffeId: 'spiffe://example.org/ns/default/sa/web', weight: 1, healthy: true }],
      acceptedIdentities: [API_ID, 'spiffe://example.org/ns/*/sa/api-v2'],
    },
    WEB_ID,
  );
  t.doesNotThrow(() => checkMessage(TypeUrl.Cluster, cluster));
  const tls = (cluster.transport_socket as { typed_config: { common_tls_context: { combined_validation_context: unknown } } }).typed_config;
  t.notMatch(
    JSON.stringify(tls.common_tls_context.combined_validation_context),
    'sa/web',
    'an instance claiming web does not widen the SAN list',
  );
  matchGolden(t, 'xds/secure-naming-cluster.json', cluster);
});
