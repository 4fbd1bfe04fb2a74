/**
 * The two clusters of destinations the mesh doesn't know (transparent proxy):
 * - `capture:passthrough` (policy allow): ORIGINAL_DST, so Envoy connects to
 *   the address the app asked for, in plaintext, as the Envoy user (whose
 *   connections the capture rules never catch, so there is no loop);
 * - `capture:blackhole` (policy registryOnly, and the capture listeners' loop
 *   guards): STATIC with no endpoints, so tcp_proxy finds no host and closes
 *   the connection at once.
 * Each is used by its own filter chain with its own stat prefix, so both are
 * counted: `tcp.capture_passthrough.downstream_cx_total`,
 * `tcp.capture_blackhole.downstream_cx_total` (and the clusters' own
 * `cluster.capture:passthrough.upstream_cx_total`,
 * `cluster.capture:blackhole.upstream_cx_none_healthy`).
 */
import { BLACKHOLE_CLUSTER, PASSTHROUGH_CLUSTER, statPrefix } from '../names.js';
import { CONNECT_TIMEOUT, T, type XdsResource } from './common.js';

export function buildPassthroughCluster(): XdsResource {
  return { name: PASSTHROUGH_CLUSTER, type: 'ORIGINAL_DST', connect_timeout: CONNECT_TIMEOUT, lb_policy: 'CLUSTER_PROVIDED' };
}

export function buildBlackholeCluster(): XdsResource {
  return {
    name: BLACKHOLE_CLUSTER,
    type: 'STATIC',
    connect_timeout: CONNECT_TIMEOUT,
    load_assignment: { cluster_name: BLACKHOLE_CLUSTER, endpoints: [] },
  };
}

/** A filter chain (name, match) whose tcp_proxy sends to `cluster`, counted under the chain name's stat prefix. */
export function tcpProxyChain(name: string, cluster: string, match?: XdsResource): XdsResource {
  return {
    name,
    ...(match === undefined ? {} : { filter_chain_match: match }),
    filters: [{ name: 'envoy.filters.network.tcp_proxy', typed_config: { '@type': T.tcpProxy, stat_prefix: statPrefix(name), cluster } }],
  };
}

export const ORIGINAL_DST_T = 'type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst';

/** The listener filter that restores the destination the app asked for (SO_ORIGINAL_DST after an iptables REDIRECT). */
export function originalDstFilter(): XdsResource {
  return { name: 'envoy.filters.listener.original_dst', typed_config: { '@type': ORIGINAL_DST_T } };
}

/** A UInt32Value, as protobufjs objects carry wrapper types. */
export function u32(value: number): XdsResource {
  return { value };
}
