/**
 * The outbound listener of an upstream on 127.0.0.1:localPort: plaintext from
 * the local caller; an HTTP connection manager with routes from RDS for
 * HTTP-like services, a tcp_proxy to the service's cluster for TCP.
 */
import type { ModelUpstream } from '../../model/proxy-model.js';
import { isHttpLike } from '../../model/proxy-model.js';
import { outboundClusterName, outboundListenerName, outboundRouteName, statPrefix } from '../names.js';
import { adsConfigSource, routerFilter, socketAddress, T, type XdsResource } from './common.js';

export function buildOutboundListener(upstream: ModelUpstream): XdsResource {
  const name = outboundListenerName(upstream.service, upstream.localPort);
  const filter: XdsResource = isHttpLike(upstream.protocol)
    ? {
        name: 'envoy.filters.network.http_connection_manager',
        typed_config: {
          '@type': T.hcm,
          stat_prefix: statPrefix(name),
          codec_type: 'AUTO',
          rds: { route_config_name: outboundRouteName(upstream.service), config_source: adsConfigSource() },
          http_filters: [routerFilter()],
        },
      }
    : {
        name: 'envoy.filters.network.tcp_proxy',
        typed_config: { '@type': T.tcpProxy, stat_prefix: statPrefix(name), cluster: outboundClusterName(upstream.service) },
      };
  return {
    name,
    address: socketAddress('127.0.0.1', upstream.localPort),
    traffic_direction: 'OUTBOUND',
    filter_chains: [{ filters: [filter] }],
  };
}
