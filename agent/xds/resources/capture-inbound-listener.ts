/**
 * The inbound capture listener `capture:inbound` on 0.0.0.0:inboundPort (and
 * [::] with IPv6): the capture rules REDIRECT TCP arriving for a captured
 * workload's app port here, so an app bound on 0.0.0.0 is never reached
 * around Envoy. The original_dst listener filter restores the app port, and
 * the chain of the workload owning it (`capture:inbound:<workload>`) requires
 * mTLS exactly like the workload's own inbound listener (its SVID, a client
 * certificate of the trust domain, RBAC, rate limit, XFCC), then forwards to
 * its local app cluster. A workload in permissive mode (PeerAuthentication)
 * gets two chains told apart by the tls_inspector: `:mtls` and `:plaintext`.
 * `capture:inbound:loop` closes connections made to the listener's own port
 * (from another host: nothing to forward to). Any other port matches no chain:
 * Envoy closes the connection and counts
 * `listener.0.0.0.0_<inboundPort>.no_filter_chain_match`.
 */
import type { ModelCapture, ModelWorkload } from '../../model/proxy-model.js';
import { isHttpLike } from '../../model/proxy-model.js';
import { BLACKHOLE_CLUSTER, CAPTURE_INBOUND_LISTENER, captureInboundChainName, captureLoopChainName } from '../names.js';
import { inboundAccessLog } from './access-log.js';
import { originalDstFilter, tcpProxyChain, u32 } from './capture-clusters.js';
import { socketAddress, type XdsResource } from './common.js';
import { downstreamTls, inboundFilters, inboundLogged, tlsInspector } from './inbound-listener.js';
import type { Telemetry } from './tracing.js';

function workloadChains(workload: ModelWorkload, trustDomain: string, telemetry: Telemetry): XdsResource[] {
  const name = captureInboundChainName(workload.name);
  const filters = inboundFilters(workload, name, trustDomain, telemetry);
  const tls = downstreamTls(workload, trustDomain);
  const port = u32(workload.appPort);
  if (workload.inbound?.mtls?.mode !== 'permissive')
    return [{ name, filter_chain_match: { destination_port: port }, filters, transport_socket: tls }];
  return [
    {
      name: captureInboundChainName(workload.name, 'mtls'),
      filter_chain_match: { destination_port: port, transport_protocol: 'tls' },
      filters,
      transport_socket: tls,
    },
    {
      name: captureInboundChainName(workload.name, 'plaintext'),
      filter_chain_match: { destination_port: port, transport_protocol: 'raw_buffer' },
      filters,
    },
  ];
}

/** workloads: the model's; those named in capture.inboundWorkloads get a chain. */
export function buildCaptureInboundListener(
  capture: ModelCapture,
  workloads: readonly ModelWorkload[],
  trustDomain: string,
  telemetry: Telemetry = {},
): XdsResource {
  const captured = workloads.filter((w) => capture.inboundWorkloads.includes(w.name));
  const permissive = captured.some((w) => w.inbound?.mtls?.mode === 'permissive');
  const loop = tcpProxyChain(captureLoopChainName('inbound'), BLACKHOLE_CLUSTER, { destination_port: u32(capture.inboundPort) });
  const listener: XdsResource = {
    name: CAPTURE_INBOUND_LISTENER,
    address: socketAddress('0.0.0.0', capture.inboundPort),
    ...(capture.ipv6 ? { additional_addresses: [{ address: socketAddress('::', capture.inboundPort) }] } : {}),
    traffic_direction: 'INBOUND',
    listener_filters: [originalDstFilter(), ...(permissive ? [tlsInspector()] : [])],
    // Server-first protocols send nothing for the tls_inspector to read: after its timeout they go on as plaintext.
    ...(permissive ? { continue_on_listener_filters_timeout: true } : {}),
    filter_chains: [loop, ...captured.flatMap((w) => workloadChains(w, trustDomain, telemetry))],
  };
  // TCP with policy or a log: the listener logs every connection, including those RBAC closes (as the workload's own listener does).
  const logged = captured.filter((w) => inboundLogged(w) && !isHttpLike(w.protocol)).map((w) => w.name);
  if (logged.length > 0)
    listener.access_log = [inboundAccessLog(CAPTURE_INBOUND_LISTENER, logged.join(','), 'tcp', telemetry.accessLogPath)];
  return listener;
}
