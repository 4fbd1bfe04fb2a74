/**
 * The inbound listener of a workload: mTLS on 0.0.0.0:meshPort with the
 * workload's SVID (SDS), a client certificate required, verified against the
 * trust bundle (SDS `ROOTCA`) and restricted to URI SANs in the mesh's trust
 * domain. HTTP-like workloads get an HTTP connection manager that forwards the
 * peer's SPIFFE ID in x-forwarded-client-cert (sanitized, then set); TCP
 * workloads get a tcp_proxy. Both forward to the local app cluster.
 *
 * Server-side policy (`workload.inbound`, agent/model/inbound-policy.ts):
 * - authorization: RBAC filters before the router / tcp_proxy (./authz-rbac.ts);
 * - rate limit: the local rate limit filter and per-route buckets (./rate-limit.ts);
 * - permissive mTLS: a tls_inspector listener filter and two filter chains,
 *   `transport_protocol: tls` with mTLS as in strict mode and `raw_buffer` for
 *   plaintext (which carries no client certificate, hence no XFCC);
 * - with any of these, a JSON access log (./access-log.ts).
 * With none, the listener is exactly the strict one, unless the workload has
 * an access log of its own (`accessLog`) or tracing is on (./tracing.ts: the
 * HCM tracer and a span decorator naming the workload).
 */
import type { ModelWorkload } from '../../model/proxy-model.js';
import { isHttpLike } from '../../model/proxy-model.js';
import { identitySecretName, inboundChainName, inboundListenerName, inboundRouteName, localAppClusterName, statPrefix } from '../names.js';
import { inboundAccessLog } from './access-log.js';
import { httpRbacFilters, networkRbacFilters } from './authz-rbac.js';
import { bundleValidation, meshTlsParams, routerFilter, sdsSecret, socketAddress, T, type XdsResource } from './common.js';
import { rateLimitFilter, rateLimitRoutes } from './rate-limit.js';
import { decorateRoutes, hcmTracing, type Telemetry } from './tracing.js';

const TLS_INSPECTOR_T = 'type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector';

/** The listener filter that tells TLS from plaintext (permissive mode's two filter chains). */
export function tlsInspector(): XdsResource {
  return { name: 'envoy.filters.listener.tls_inspector', typed_config: { '@type': TLS_INSPECTOR_T } };
}

export function trustDomainPrefix(trustDomain: string): string {
  return `spiffe://${trustDomain}/`;
}

/** mTLS with the workload's SVID, a client certificate from the trust domain required. */
export function downstreamTls(workload: ModelWorkload, trustDomain: string): XdsResource {
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

/** True when the workload's inbound traffic is logged: its own switch, or any server-side policy. */
export function inboundLogged(workload: ModelWorkload): boolean {
  return workload.accessLog === true || workload.inbound !== undefined;
}

function httpFilter(workload: ModelWorkload, name: string, trustDomain: string, telemetry: Telemetry): XdsResource {
  const route: XdsResource = { cluster: localAppClusterName(workload.name) };
  // gRPC streams may be long-lived: no route timeout.
  if (workload.protocol === 'grpc') route.timeout = { seconds: '0' };
  const policy = workload.inbound;
  const subject = { direction: 'inbound', service: workload.name } as const;
  const routes = decorateRoutes(
    [
      ...(policy?.rateLimit === undefined ? [] : rateLimitRoutes(policy.rateLimit, workload.name, route)),
      { match: { prefix: '/' }, route },
    ],
    telemetry.tracing,
    subject,
  );
  const hcm: XdsResource = {
    '@type': T.hcm,
    stat_prefix: statPrefix(name),
    codec_type: 'AUTO',
    route_config: {
      name: inboundRouteName(workload.name),
      virtual_hosts: [{ name: workload.name, domains: ['*'], routes }],
    },
    forward_client_cert_details: 'SANITIZE_SET',
    set_current_client_cert_details: { uri: true },
    http_filters: [
      ...(policy?.authorization === undefined ? [] : httpRbacFilters(policy.authorization, trustDomain)),
      ...(policy?.rateLimit === undefined ? [] : [rateLimitFilter(policy.rateLimit, workload.name)]),
      routerFilter(),
    ],
  };
  if (inboundLogged(workload)) hcm.access_log = [inboundAccessLog(name, workload.name, 'http', telemetry.accessLogPath)];
  if (telemetry.tracing !== undefined) hcm.tracing = hcmTracing(telemetry.tracing, subject);
  return { name: 'envoy.filters.network.http_connection_manager', typed_config: hcm };
}

function tcpFilters(workload: ModelWorkload, name: string, trustDomain: string): XdsResource[] {
  const authz = workload.inbound?.authorization;
  return [
    ...(authz === undefined ? [] : networkRbacFilters(authz, workload.name, trustDomain)),
    {
      name: 'envoy.filters.network.tcp_proxy',
      typed_config: { '@type': T.tcpProxy, stat_prefix: statPrefix(name), cluster: localAppClusterName(workload.name) },
    },
  ];
}

/**
 * The network filters of a workload's inbound traffic (RBAC, rate limit, XFCC,
 * to its local app cluster); `name` gives the stat prefix and the access log's
 * listener name. The capture listener's chains reuse them.
 */
export function inboundFilters(workload: ModelWorkload, name: string, trustDomain: string, telemetry: Telemetry = {}): XdsResource[] {
  return isHttpLike(workload.protocol) ? [httpFilter(workload, name, trustDomain, telemetry)] : tcpFilters(workload, name, trustDomain);
}

/** telemetry: the access log file (absent: Envoy's stdout) and tracing. */
export function buildInboundListener(workload: ModelWorkload, trustDomain: string, telemetry: Telemetry = {}): XdsResource {
  const name = inboundListenerName(workload.name);
  const filters = inboundFilters(workload, name, trustDomain, telemetry);
  const tls = downstreamTls(workload, trustDomain);
  const listener: XdsResource = {
    name,
    address: socketAddress('0.0.0.0', workload.meshPort),
    traffic_direction: 'INBOUND',
    filter_chains: [{ filters, transport_socket: tls }],
  };
  if (workload.inbound?.mtls?.mode === 'permissive') {
    listener.listener_filters = [tlsInspector()];
    listener.filter_chains = [
      { name: inboundChainName(workload.name, 'mtls'), filter_chain_match: { transport_protocol: 'tls' }, filters, transport_socket: tls },
      { name: inboundChainName(workload.name, 'plaintext'), filter_chain_match: { transport_protocol: 'raw_buffer' }, filters },
    ];
  }
  // TCP: the listener logs every connection, including those RBAC closes before tcp_proxy runs.
  if (inboundLogged(workload) && !isHttpLike(workload.protocol))
    listener.access_log = [inboundAccessLog(name, workload.name, 'tcp', telemetry.accessLogPath)];
  return listener;
}
