/**
 * The JSON access log: one line per request (HTTP) or connection (TCP), to a
 * file (agent config accessLog.path, default <dataDir>/envoy/access.log) or,
 * with no path, to Envoy's stdout, where the agent picks the lines up
 * (`kind: "access"`) and logs them. Inbound lines name the peer by its SPIFFE
 * ID from its client certificate, outbound lines by the one the upstream
 * presented. The authorization decision: the response code details /
 * connection termination details name the RBAC policy that denied
 * (`rbac_access_denied_matched_policy[<policy>.<rule>]`, `[none]` for a
 * default deny), and the RBAC filters' dynamic metadata is included as well.
 * Field reference: docs/operations/tracing-and-access-logs.md. Pure.
 */
import type { XdsResource } from './common.js';

const FILE_T = 'type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog';
const STDOUT_T = 'type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog';

/** The `kind` of every access log line: how the agent tells them from Envoy's other output on stdout. */
export const ACCESS_LOG_KIND = 'access';

export type Direction = 'inbound' | 'outbound';

/** Fields of every line (HTTP and TCP); the peer and TLS version are the other side's. */
function commonFields(direction: Direction): Record<string, string> {
  const peerSide = direction === 'inbound' ? 'DOWNSTREAM' : 'UPSTREAM';
  return {
    kind: ACCESS_LOG_KIND,
    time: '%START_TIME%',
    direction,
    peer: `%${peerSide}_PEER_URI_SAN%`,
    tls: `%${peerSide}_TLS_VERSION%`,
    upstream_host: '%UPSTREAM_HOST%',
    upstream_cluster: '%UPSTREAM_CLUSTER%',
    flags: '%RESPONSE_FLAGS%',
    bytes_received: '%BYTES_RECEIVED%',
    bytes_sent: '%BYTES_SENT%',
    duration_ms: '%DURATION%',
  };
}

/** The fields of an HTTP access log line (Envoy command operators). */
export const HTTP_LOG_FIELDS: Readonly<Record<string, string>> = Object.freeze({
  method: '%REQ(:METHOD)%',
  path: '%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%',
  authority: '%REQ(:AUTHORITY)%',
  protocol: '%PROTOCOL%',
  status: '%RESPONSE_CODE%',
  details: '%RESPONSE_CODE_DETAILS%',
  trace_id: '%TRACE_ID%',
  request_id: '%REQ(X-REQUEST-ID)%',
  rbac: '%DYNAMIC_METADATA(envoy.filters.http.rbac)%',
});

/** The fields of a TCP access log line. */
export const TCP_LOG_FIELDS: Readonly<Record<string, string>> = Object.freeze({
  details: '%CONNECTION_TERMINATION_DETAILS%',
  rbac: '%DYNAMIC_METADATA(envoy.filters.network.rbac)%',
});

/** A google.protobuf.Struct of string values in protobufjs form (its built-in google types use camelCase field names). */
function struct(values: Readonly<Record<string, string>>): XdsResource {
  return { fields: Object.fromEntries(Object.entries(values).map(([k, v]) => [k, { stringValue: v }])) };
}

/** Who a line is about: the listener (or chain) and the service; `caller` on outbound lines. */
export interface AccessLogSubject {
  readonly listener: string;
  readonly direction: Direction;
  /** The local workload (inbound) or the upstream service called (outbound). */
  readonly service: string;
  /** Outbound: the local workload that calls. */
  readonly caller?: string;
}

/** One access log entry for a listener, connection manager or tcp_proxy; `path` absent: stdout. */
export function accessLog(subject: AccessLogSubject, kind: 'http' | 'tcp', path: string | undefined): XdsResource {
  const fields = {
    ...commonFields(subject.direction),
    ...(kind === 'http' ? HTTP_LOG_FIELDS : TCP_LOG_FIELDS),
    listener: subject.listener,
    service: subject.service,
    ...(subject.caller === undefined ? {} : { caller: subject.caller }),
  };
  const log_format = { json_format: struct(fields) };
  return path === undefined
    ? { name: 'envoy.access_loggers.stdout', typed_config: { '@type': STDOUT_T, log_format } }
    : { name: 'envoy.access_loggers.file', typed_config: { '@type': FILE_T, path, log_format } };
}

/** The inbound access log of a workload's listener or chain `listener`. */
export function inboundAccessLog(listener: string, service: string, kind: 'http' | 'tcp', path: string | undefined): XdsResource {
  return accessLog({ listener, direction: 'inbound', service }, kind, path);
}
