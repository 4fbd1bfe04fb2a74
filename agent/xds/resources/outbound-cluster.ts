/**
 * The cluster of an upstream service: endpoints from EDS (ADS), TLS
 * origination with the caller's SVID (SDS), and a peer check that accepts only
 * the identities secure naming allows to serve the service (URI SAN matchers
 * from `upstream.acceptedIdentities`, ./peer-sans.ts; never catalog meta) on
 * top of the trust bundle (SDS `ROOTCA`). HTTP/2 upstream for http2 and grpc.
 */
import type { ModelUpstream } from '../../model/proxy-model.js';
import { isHttp2 } from '../../model/proxy-model.js';
import { identitySecretName, outboundClusterName } from '../names.js';
import {
  adsConfigSource,
  bundleValidation,
  CONNECT_TIMEOUT,
  http2ProtocolOptions,
  meshTlsParams,
  sdsSecret,
  T,
  type XdsResource,
} from './common.js';
import { peerSanMatchers } from './peer-sans.js';

/** callerSpiffeId: the SPIFFE ID of the local workload making the calls. */
export function buildOutboundCluster(upstream: ModelUpstream, callerSpiffeId: string): XdsResource {
  const name = outboundClusterName(upstream.service);
  const sans = peerSanMatchers(upstream.acceptedIdentities);
  const cluster: XdsResource = {
    name,
    type: 'EDS',
    connect_timeout: CONNECT_TIMEOUT,
    eds_cluster_config: { eds_config: adsConfigSource(), service_name: name },
    lb_policy: 'ROUND_ROBIN',
    transport_socket: {
      name: 'envoy.transport_sockets.tls',
      typed_config: {
        '@type': T.upstreamTls,
        common_tls_context: {
          tls_params: meshTlsParams(),
          tls_certificate_sds_secret_configs: [sdsSecret(identitySecretName(callerSpiffeId))],
          combined_validation_context: bundleValidation(sans),
        },
      },
    },
  };
  if (isHttp2(upstream.protocol)) cluster.typed_extension_protocol_options = http2ProtocolOptions();
  return cluster;
}
