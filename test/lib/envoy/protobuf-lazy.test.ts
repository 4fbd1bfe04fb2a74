/**
 * protobuf-lazy.ts: each of a type's five functions is generated on its first
 * call, and encodes and decodes exactly as protobufjs's own setup does.
 */
import protobuf from 'protobufjs';
import t from 'tap';
import { DECODE_OPTIONS, decodeMessage, encodeMessage, envoyRoot, messageType, toAny } from '../../../lib/envoy/protos.js';

const CLUSTER = 'envoy.config.cluster.v3.Cluster';
const cluster = {
  name: 'out|api',
  type: 'EDS',
  connect_timeout: { seconds: 1, nanos: 500_000_000 },
  eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' }, service_name: 'api' },
  lb_policy: 'ROUND_ROBIN',
};

/** A root of its own: other tests in this process may have used the shared one's types. */
const freshRoot = () => protobuf.Root.fromJSON(envoyRoot().toJSON());

const own = (type: protobuf.Type) =>
  (['encode', 'decode', 'verify', 'fromObject', 'toObject'] as const).filter((m) => Object.hasOwn(type, m));

t.test('a type gets only the functions that were called', async (t) => {
  const root = freshRoot();
  const type = messageType(CLUSTER, root);
  t.same(own(type), [], 'nothing generated before the first call');
  const bytes = encodeMessage(CLUSTER, cluster, root);
  t.same(own(type), ['encode', 'verify', 'fromObject'], 'encoding generated encode, verify and fromObject');
  decodeMessage(CLUSTER, bytes, root);
  t.same(own(type), ['encode', 'decode', 'verify', 'fromObject', 'toObject'], 'decoding added decode and toObject');
});

t.test("the same bytes and objects as protobufjs's own setup", async (t) => {
  const lazy = freshRoot();
  // protobufjs's setup generates all five for a type at once.
  const eagerType = messageType(CLUSTER, freshRoot()).setup();
  const viaLazy = encodeMessage(CLUSTER, cluster, lazy);
  const viaEager = eagerType.encode(eagerType.fromObject(cluster)).finish();
  t.same(Buffer.from(viaLazy), Buffer.from(viaEager), 'the same bytes');
  const decoded = decodeMessage(CLUSTER, viaLazy, lazy);
  t.same(decoded, eagerType.toObject(eagerType.decode(viaEager), DECODE_OPTIONS), 'the same object');
  t.match(decoded, { name: 'out|api', type: 'EDS', connect_timeout: { seconds: '1', nanos: 500_000_000 } });
});

t.test('google.protobuf.Any fields go through its wrapper, both ways', async (t) => {
  const tls = toAny('envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext', {
    common_tls_context: { tls_certificate_sds_secret_configs: [{ name: 'spiffe://a/ns/b/sa/c' }] },
  });
  const withAny = { ...cluster, transport_socket: { name: 'envoy.transport_sockets.tls', typed_config: tls } };
  const root = freshRoot();
  const back = decodeMessage(CLUSTER, encodeMessage(CLUSTER, withAny, root), root);
  // The wrapper's toObject unpacks an Any it knows into its JSON form (@type and the message's fields).
  t.same(back.transport_socket, {
    name: 'envoy.transport_sockets.tls',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
      common_tls_context: { tls_certificate_sds_secret_configs: [{ name: 'spiffe://a/ns/b/sa/c' }] },
    },
  });
});
