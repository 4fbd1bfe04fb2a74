/**
 * The inbound listener of a workload: mTLS on 0.0.0.0:meshPort with the
 * workload's SVID (SDS), a client certificate required, verified against the
 * trust bundle (SDS `ROOTCA`) and restricted to URI SANs in the mesh's trust
 * domain. HTTP-like workloads get an HTTP connection manager that forwards the
 * peer's SPIFFE ID in x-forwarded-client-cert (sanitized, then set); TCP
 * workloads get a tcp_proxy. Both forward to the local app cluster.
 */
import type { ModelWorkload } from '../../model/proxy-model.js';
import { isHttpLike } from '../../model/proxy-model.js';
import { identitySecretName, inboundListenerName, inboundRouteName, localAppClusterName, statPrefix } from '../names.js';
import { bundleValidation, meshTlsParams, routerFilter, sdsSecret, socketAddress, T, type XdsResource } from './common.js';

export function trustDomainPrefix(trustDomain: string): string {
  return `spiffe://${trustDomain}/`;
}

function downstreamTls(workload: ModelWorkload, trustDomain: string): XdsResource {
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: {
      '@type': T.downstreamTls,
      require_client_certificate: { value: true },
      common_tls_context: {
        tls_params: meshTlsParams(),
        tls_certificate_sds_secret_configs: [sdsSecret(identitySecretName(workload.spiffeId))],
        combined_validation_context: bundleValidation([{ san_type: 'URI', matcher: { prefix: trustDomainPrefix(trustDomain) } }]),
      },
    },
  };
}

function httpFilter(workload: ModelWorkload, name: string): XdsResource {
  const route: XdsResource = { cluster: localAppClusterName(workload.name) };
  // gRPC streams may be long-lived: no route timeout.
  if (workload.protocol === 'grpc') route.timeout = { seconds: '0' };
  return {
    name: 'envoy.filters.network.http_connection_manager',
    typed_config: {
      '@type': T.hcm,
      stat_prefix: statPrefix(name),
      codec_type: 'AUTO',
      route_config: {
        name: inboundRouteName(workload.name),
        virtual_hosts: [{ name: workload.name, domains: ['*'], routes: [{ match: { prefix: '/' }, route }] }],
      },
      forward_client_cert_details: 'SANITIZE_SET',
      set_current_client_cert_details: { uri: true },
      http_filters: [routerFilter()],
    },
  };
}

function tcpFilter(workload: ModelWorkload, name: string): XdsResource {
  return {
    name: 'envoy.filters.network.tcp_proxy',
    typed_config: { '@type': T.tcpProxy, stat_prefix: statPrefix(name), cluster: localAppClusterName(workload.name) },
  };
}

export function buildInboundListener(workload: ModelWorkload, trustDomain: string): XdsResource {
  const name = inboundListenerName(workload.name);
  const filter = isHttpLike(workload.protocol) ? httpFilter(workload, name) : tcpFilter(workload, name);
  return {
    name,
    address: socketAddress('0.0.0.0', workload.meshPort),
    traffic_direction: 'INBOUND',
    filter_chains: [{ filters: [filter], transport_socket: downstreamTls(workload, trustDomain) }],
  };
}
