/**
 * The outbound capture listener `capture:outbound` on 127.0.0.1:outboundPort
 * (and [::1] with IPv6): the capture rules REDIRECT every outbound TCP
 * connection of local apps here. The original_dst listener filter restores the
 * destination the app asked for, and Envoy picks the filter chain by it:
 * - `capture:outbound:loop`: the listener's own port on loopback, i.e. a
 *   connection made to the listener itself (no original destination to
 *   restore). Forwarding it would connect to the listener again, forever; it
 *   is closed (blackhole) and counted;
 * - `capture:outbound:<service>:<port>`: the service's instance addresses
 *   (/32, /128) on that app port; the same filter as the caller's explicit
 *   outbound listener (HCM with RDS `outbound:<service>@<caller>`, or tcp_proxy
 *   to the caller's clusters), so captured calls go through mTLS with the
 *   caller's SVID and the service's identity check, load-balanced over the
 *   service's instances;
 * - the default chain: `capture:passthrough` (policy allow) or
 *   `capture:blackhole` (registryOnly).
 */
import type { ModelCapture, ModelUpstream } from '../../model/proxy-model.js';
import {
  BLACKHOLE_CLUSTER,
  CAPTURE_OUTBOUND_LISTENER,
  captureLoopChainName,
  captureOutboundChainName,
  PASSTHROUGH_CLUSTER,
} from '../names.js';
import { originalDstFilter, tcpProxyChain, u32 } from './capture-clusters.js';
import { socketAddress, type XdsResource } from './common.js';
import { type OutboundTelemetry, outboundFilter } from './outbound-listener.js';

function prefixRange(address: string): XdsResource {
  return { address_prefix: address, prefix_len: u32(address.includes(':') ? 128 : 32) };
}

/** upstreams: the model's; each chain uses the caller's upstream of its service (chains without one are left out). */
export function buildCaptureOutboundListener(
  capture: ModelCapture,
  upstreams: readonly ModelUpstream[],
  telemetry: OutboundTelemetry = {},
): XdsResource {
  const loop = tcpProxyChain(captureLoopChainName('outbound'), BLACKHOLE_CLUSTER, {
    destination_port: u32(capture.outboundPort),
    prefix_ranges: [
      { address_prefix: '127.0.0.0', prefix_len: u32(8) },
      ...(capture.ipv6 ? [{ address_prefix: '::1', prefix_len: u32(128) }] : []),
    ],
  });
  const chains: XdsResource[] = [];
  for (const chain of capture.chains) {
    const upstream = upstreams.find((u) => u.workload === capture.caller && u.service === chain.service && u.mirrorOnly !== true);
    if (upstream === undefined) continue;
    const name = captureOutboundChainName(chain.service, chain.port);
    chains.push({
      name,
      filter_chain_match: { destination_port: u32(chain.port), prefix_ranges: chain.addresses.map(prefixRange) },
      filters: [outboundFilter(upstream, name, telemetry)],
    });
  }
  const unknown = capture.policy === 'allow' ? PASSTHROUGH_CLUSTER : BLACKHOLE_CLUSTER;
  return {
    name: CAPTURE_OUTBOUND_LISTENER,
    address: socketAddress('127.0.0.1', capture.outboundPort),
    ...(capture.ipv6 ? { additional_addresses: [{ address: socketAddress('::1', capture.outboundPort) }] } : {}),
    traffic_direction: 'OUTBOUND',
    listener_filters: [originalDstFilter()],
    filter_chains: [loop, ...chains],
    default_filter_chain: tcpProxyChain(unknown, unknown),
  };
}
