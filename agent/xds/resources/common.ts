/**
 * Pieces every resource builder shares: the ADS config source, SDS secret
 * references, the router filter and HTTP/2 upstream options. Objects use the
 * Envoy proto field names (snake_case); nested typed configs carry `@type`.
 */
import { TRUST_BUNDLE_SECRET_NAME } from '../names.js';

/** An Envoy resource as a plain object with proto field names. */
export type XdsResource = Record<string, unknown>;

export const T = Object.freeze({
  hcm: 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
  tcpProxy: 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy',
  router: 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router',
  downstreamTls: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
  upstreamTls: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
  httpProtocolOptions: 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
  fault: 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault',
});

/** The HTTP fault filter's name (its per-route config is keyed by it). */
export const FAULT_FILTER = 'envoy.filters.http.fault';

/** A google.protobuf.Duration of some milliseconds. */
export function durationOf(ms: number): XdsResource {
  const seconds = Math.floor(ms / 1000);
  const nanos = (ms % 1000) * 1_000_000;
  return nanos === 0 ? { seconds: String(seconds) } : { seconds: String(seconds), nanos };
}

/** A FractionalPercent of a percentage (0-100, fractions kept to a millionth). */
export function fractionalPercent(percent: number): XdsResource {
  return { numerator: Math.round(percent * 10_000), denominator: 'MILLION' };
}

export const CONNECT_TIMEOUT = Object.freeze({ seconds: '5' });

/**
 * Config source: the same ADS stream, v3 resources. One frozen object shared by
 * every resource that names it (each cluster, each SDS secret reference): the
 * memo keeps built resources, and 800 copies of it were about 70 KB of heap.
 */
const ADS_CONFIG_SOURCE: XdsResource = Object.freeze({ ads: Object.freeze({}), resource_api_version: 'V3' });
export function adsConfigSource(): XdsResource {
  return ADS_CONFIG_SOURCE;
}

/** A reference to an SDS secret served over ADS. */
export function sdsSecret(name: string): XdsResource {
  return { name, sds_config: adsConfigSource() };
}

/**
 * A combined validation context: the trust bundle from SDS (`ROOTCA`) plus the
 * given SAN matchers, all of which Envoy applies to the peer certificate.
 */
export function bundleValidation(sanMatchers: XdsResource[]): XdsResource {
  return {
    default_validation_context: { match_typed_subject_alt_names: sanMatchers },
    validation_context_sds_secret_config: sdsSecret(TRUST_BUNDLE_SECRET_NAME),
  };
}

/** TLS 1.2 minimum for every mesh hop. */
export function meshTlsParams(): XdsResource {
  return { tls_minimum_protocol_version: 'TLSv1_2' };
}

export function routerFilter(): XdsResource {
  return { name: 'envoy.filters.http.router', typed_config: { '@type': T.router } };
}

export function socketAddress(address: string, port: number): XdsResource {
  return { socket_address: { address, port_value: port } };
}

/** typed_extension_protocol_options making a cluster speak HTTP/2 to its endpoints. */
export function http2ProtocolOptions(): XdsResource {
  return {
    'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
      '@type': T.httpProtocolOptions,
      explicit_http_config: { http2_protocol_options: {} },
    },
  };
}
