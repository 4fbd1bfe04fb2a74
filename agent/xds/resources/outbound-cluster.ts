/**
 * The clusters of an upstream, one set per local caller: the whole service
 * (`outbound:<service>@<caller>`) and one per TrafficRoute subset
 * (`outbound:<service>:<subset>@<caller>`). Endpoints from EDS (ADS), TLS
 * origination with the caller's SVID (SDS), and a peer check that accepts only
 * the identities secure naming allows to serve the service (URI SAN matchers
 * from `upstream.acceptedIdentities`, ./peer-sans.ts; never catalog meta) on
 * top of the trust bundle (SDS `ROOTCA`). TrafficPolicy settings from
 * cluster-policy.ts. HTTP/2 upstream for http2 and grpc.
 */
import type { ModelUpstream } from '../../model/proxy-model.js';
import { isHttp2 } from '../../model/proxy-model.js';
import { identitySecretName, outboundClusterName, outboundEndpointsName, subsetClusterName } from '../names.js';
import { circuitBreakers, connectTimeout, lbPolicy, outlierDetection } from './cluster-policy.js';
import { adsConfigSource, bundleValidation, http2ProtocolOptions, meshTlsParams, sdsSecret, T, type XdsResource } from './common.js';
import { peerSanMatchers } from './peer-sans.js';

/** The cluster name of a destination: a subset of the upstream's service, or all of it. */
export function destinationCluster(upstream: ModelUpstream, subset: string | undefined): string {
  return subset === undefined
    ? outboundClusterName(upstream.service, upstream.workload)
    : subsetClusterName(upstream.service, subset, upstream.workload);
}

/** callerSpiffeId: the SPIFFE ID of the local workload making the calls; subset: one of the route's subsets. */
export function buildOutboundCluster(upstream: ModelUpstream, callerSpiffeId: string, subset?: string): XdsResource {
  const name = destinationCluster(upstream, subset);
  const sans = peerSanMatchers(upstream.acceptedIdentities);
  const policy = upstream.traffic?.policy;
  const cluster: XdsResource = {
    name,
    type: 'EDS',
    connect_timeout: connectTimeout(policy),
    eds_cluster_config: { eds_config: adsConfigSource(), service_name: outboundEndpointsName(upstream.service, subset) },
    lb_policy: lbPolicy(policy),
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
  const breakers = circuitBreakers(policy);
  if (breakers !== undefined) cluster.circuit_breakers = breakers;
  const outliers = outlierDetection(policy);
  if (outliers !== undefined) cluster.outlier_detection = outliers;
  if (isHttp2(upstream.protocol)) cluster.typed_extension_protocol_options = http2ProtocolOptions();
  return cluster;
}
