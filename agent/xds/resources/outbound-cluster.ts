/**
 * The cluster of an upstream service: endpoints from EDS (ADS), TLS
 * origination with the caller's SVID (SDS), and a peer check that accepts only
 * the SPIFFE IDs the catalog lists for the service (URI SAN exact matches) on
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

/**
 * A URI SAN no certificate carries: with no instances the SAN list must not be
 * empty, because an empty list would accept any peer the trust bundle accepts.
 */
export const NO_PEER_SAN = 'urn:mesh:no-instances';

/** The distinct SPIFFE IDs of the upstream's instances, sorted. */
export function upstreamSpiffeIds(upstream: ModelUpstream): string[] {
  return [...new Set(upstream.instances.map((i) => i.spiffeId))].sort();
}

/** callerSpiffeId: the SPIFFE ID of the local workload making the calls. */
export function buildOutboundCluster(upstream: ModelUpstream, callerSpiffeId: string): XdsResource {
  const name = outboundClusterName(upstream.service);
  const ids = upstreamSpiffeIds(upstream);
  const sans = (ids.length === 0 ? [NO_PEER_SAN] : ids).map((id) => ({ san_type: 'URI', matcher: { exact: id } }));
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
