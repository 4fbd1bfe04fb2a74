/**
 * The outbound listener of an upstream on 127.0.0.1:localPort: plaintext from
 * the local caller. HTTP-like services: an HTTP connection manager with the
 * caller's route config from RDS and the fault filter (empty: routes turn it
 * on with typed_per_filter_config) before the router. TCP: a tcp_proxy to the
 * caller's cluster of the service, or weighted_clusters across subset
 * clusters when the TrafficRoute has `tcp.destinations`. With the caller's
 * access log on, a JSON access log (./access-log.ts); with tracing on, the HCM
 * tracer (./tracing.ts; the route config carries the span decorator).
 */
import type { ModelUpstream } from '../../model/proxy-model.js';
import { isHttpLike } from '../../model/proxy-model.js';
import { outboundListenerName, outboundRouteName, statPrefix } from '../names.js';
import { accessLog } from './access-log.js';
import { adsConfigSource, FAULT_FILTER, routerFilter, socketAddress, T, type XdsResource } from './common.js';
import { destinations } from './http-routes.js';
import { hcmTracing, type Telemetry } from './tracing.js';

/** The listeners' telemetry plus whether the calling workload's traffic is logged. */
export interface OutboundTelemetry extends Telemetry {
  readonly logged?: boolean;
}

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
export function outboundFilter(upstream: ModelUpstream, name: string, telemetry: OutboundTelemetry = {}): XdsResource {
  const subject = { listener: name, direction: 'outbound', service: upstream.service, caller: upstream.workload } as const;
  const http = isHttpLike(upstream.protocol);
  const log = telemetry.logged === true ? { access_log: [accessLog(subject, http ? 'http' : 'tcp', telemetry.accessLogPath)] } : {};
  if (!http)
    return {
      name: 'envoy.filters.network.tcp_proxy',
      typed_config: { '@type': T.tcpProxy, stat_prefix: statPrefix(name), ...tcpTarget(upstream), ...log },
    };
  return {
    name: 'envoy.filters.network.http_connection_manager',
    typed_config: {
      '@type': T.hcm,
      stat_prefix: statPrefix(name),
      codec_type: 'AUTO',
      rds: { route_config_name: outboundRouteName(upstream.service, upstream.workload), config_source: adsConfigSource() },
      http_filters: [faultFilter(), routerFilter()],
      ...log,
      ...(telemetry.tracing === undefined ? {} : { tracing: hcmTracing(telemetry.tracing, subject) }),
    },
  };
}

export function buildOutboundListener(upstream: ModelUpstream, telemetry: OutboundTelemetry = {}): XdsResource {
  const name = outboundListenerName(upstream.service, upstream.localPort);
  const filter = outboundFilter(upstream, name, telemetry);
  return {
    name,
    address: socketAddress('127.0.0.1', upstream.localPort),
    traffic_direction: 'OUTBOUND',
    filter_chains: [{ filters: [filter] }],
  };
}
