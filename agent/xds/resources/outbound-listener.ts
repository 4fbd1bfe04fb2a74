/**
 * The outbound listener of an upstream on 127.0.0.1:localPort: plaintext from
 * the local caller. HTTP-like services: an HTTP connection manager with the
 * caller's route config from RDS and the fault filter (empty: routes turn it
 * on with typed_per_filter_config) before the router. TCP: a tcp_proxy to the
 * caller's cluster of the service, or weighted_clusters across subset
 * clusters when the TrafficRoute has `tcp.destinations`.
 */
import type { ModelUpstream } from '../../model/proxy-model.js';
import { isHttpLike } from '../../model/proxy-model.js';
import { outboundListenerName, outboundRouteName, statPrefix } from '../names.js';
import { adsConfigSource, FAULT_FILTER, routerFilter, socketAddress, T, type XdsResource } from './common.js';
import { destinations } from './http-routes.js';

function faultFilter(): XdsResource {
  return { name: FAULT_FILTER, typed_config: { '@type': T.fault } };
}

function tcpTarget(upstream: ModelUpstream): XdsResource {
  const target = destinations(upstream, upstream.traffic?.route?.tcp?.destinations ?? [{ weight: 1 }]);
  // tcp_proxy's weighted cluster entries carry a plain uint32 weight.
  if (isWeighted(target))
    return { weighted_clusters: { clusters: target.weighted_clusters.clusters.map((c) => ({ name: c.name, weight: c.weight.value })) } };
  return target;
}

function isWeighted(
  target: XdsResource,
): target is { weighted_clusters: { clusters: Array<{ name: string; weight: { value: number } }> } } {
  return target.weighted_clusters !== undefined;
}

/**
 * The network filter taking a caller's plaintext to an upstream: its route
 * config (RDS) or its tcp_proxy. `name` gives the stat prefix; the outbound
 * capture listener's chains reuse it.
 */
export function outboundFilter(upstream: ModelUpstream, name: string): XdsResource {
  return isHttpLike(upstream.protocol)
    ? {
        name: 'envoy.filters.network.http_connection_manager',
        typed_config: {
          '@type': T.hcm,
          stat_prefix: statPrefix(name),
          codec_type: 'AUTO',
          rds: { route_config_name: outboundRouteName(upstream.service, upstream.workload), config_source: adsConfigSource() },
          http_filters: [faultFilter(), routerFilter()],
        },
      }
    : {
        name: 'envoy.filters.network.tcp_proxy',
        typed_config: { '@type': T.tcpProxy, stat_prefix: statPrefix(name), ...tcpTarget(upstream) },
      };
}

export function buildOutboundListener(upstream: ModelUpstream): XdsResource {
  const name = outboundListenerName(upstream.service, upstream.localPort);
  const filter = outboundFilter(upstream, name);
  return {
    name,
    address: socketAddress('127.0.0.1', upstream.localPort),
    traffic_direction: 'OUTBOUND',
    filter_chains: [{ filters: [filter] }],
  };
}
