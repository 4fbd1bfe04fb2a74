/**
 * A stand-in for an Istio sidecar: a static Envoy bootstrap holding a
 * workload certificate that Istio's CA signed with the exported intermediate.
 * - inbound: mTLS on `inboundPort` (a client certificate of the trust domain
 *   required, verified against our bundle, as Istio's PeerAuthentication
 *   STRICT does), then the pod's app; XFCC carries the caller's URI SAN;
 * - outbound: plaintext HTTP on `outboundPort` from the pod's app, mTLS to
 *   one upstream whose URI SAN must be `upstreamSan` (Istio's secure naming).
 * No SDS and no istiod: the certificate and roots are inline.
 */
import { socketAddress } from '../../agent/xds/resources/common.js';
import { issuedCert, type OpensslCert } from './openssl.js';

/**
 * A workload certificate as istiod signs one with the plug-in CA's files
 * (here openssl does): a fresh key, the SPIFFE ID as the only URI SAN, one day.
 */
export function istioWorkloadCert(
  dir: string,
  name: string,
  ca: { cert: string; key: string },
  spiffeId: string,
  serial: string,
): Promise<OpensslCert> {
  return issuedCert(dir, name, ca, {
    serial,
    days: 1,
    ext: [
      'basicConstraints = critical,CA:false',
      'keyUsage = critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage = serverAuth,clientAuth',
      `subjectAltName = URI:${spiffeId}`,
      'authorityKeyIdentifier = keyid',
    ],
  });
}

export interface SidecarOptions {
  trustDomain: string;
  /** The leaf, then the intermediate (what Istio's CA hands a sidecar). */
  certChainPem: string;
  keyPem: string;
  /** root-cert.pem: the roots the sidecar trusts. */
  rootsPem: string;
  inboundPort: number;
  appPort: number;
  outboundPort: number;
  upstreamPort: number;
  upstreamSan: string;
}

const HCM = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const ROUTER = 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router';
const DOWNSTREAM_TLS = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext';
const UPSTREAM_TLS = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext';

function httpManager(name: string, cluster: string, extra: Record<string, unknown> = {}) {
  return {
    name: 'envoy.filters.network.http_connection_manager',
    typed_config: {
      '@type': HCM,
      stat_prefix: name,
      route_config: { name, virtual_hosts: [{ name, domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster } }] }] },
      http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER } }],
      ...extra,
    },
  };
}

function tlsContext(o: SidecarOptions, san: Record<string, unknown>) {
  return {
    tls_params: { tls_minimum_protocol_version: 'TLSv1_2' },
    tls_certificates: [{ certificate_chain: { inline_string: o.certChainPem }, private_key: { inline_string: o.keyPem } }],
    validation_context: { trusted_ca: { inline_string: o.rootsPem }, match_typed_subject_alt_names: [{ san_type: 'URI', matcher: san }] },
  };
}

function staticCluster(name: string, port: number, transportSocket?: Record<string, unknown>) {
  return {
    name,
    type: 'STATIC',
    connect_timeout: '2s',
    load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: socketAddress('127.0.0.1', port) } }] }] },
    ...(transportSocket === undefined ? {} : { transport_socket: transportSocket }),
  };
}

export function istioSidecarBootstrap(o: SidecarOptions): Record<string, unknown> {
  return {
    node: { id: 'sidecar~istio-ns~sleeper', cluster: 'sleeper.istio-ns' },
    admin: { address: socketAddress('127.0.0.1', 0) },
    static_resources: {
      listeners: [
        {
          name: 'inbound',
          address: socketAddress('127.0.0.1', o.inboundPort),
          filter_chains: [
            {
              filters: [
                httpManager('inbound', 'app', {
                  forward_client_cert_details: 'SANITIZE_SET',
                  set_current_client_cert_details: { uri: true },
                }),
              ],
              transport_socket: {
                name: 'envoy.transport_sockets.tls',
                typed_config: {
                  '@type': DOWNSTREAM_TLS,
                  require_client_certificate: true,
                  common_tls_context: tlsContext(o, { prefix: `spiffe://${o.trustDomain}/` }),
                },
              },
            },
          ],
        },
        {
          name: 'outbound',
          address: socketAddress('127.0.0.1', o.outboundPort),
          filter_chains: [{ filters: [httpManager('outbound', 'upstream')] }],
        },
      ],
      clusters: [
        staticCluster('app', o.appPort),
        staticCluster('upstream', o.upstreamPort, {
          name: 'envoy.transport_sockets.tls',
          typed_config: { '@type': UPSTREAM_TLS, common_tls_context: tlsContext(o, { exact: o.upstreamSan }) },
        }),
      ],
    },
  };
}
