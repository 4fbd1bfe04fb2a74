/**
 * The inbound access log: one JSON line per request (HTTP) or connection
 * (TCP) to a file (the agent puts it in its Envoy folder) or, with no path,
 * to Envoy's stdout. It carries the authorization decision: the response code
 * details / connection termination details name the RBAC policy
 * (`rbac_access_denied_matched_policy[<policy>.<rule>]`), and the RBAC
 * filters' dynamic metadata is included as well. Pure.
 */
import type { XdsResource } from './common.js';

const FILE_T = 'type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog';
const STDOUT_T = 'type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog';

/** The fields of an HTTP access log line (Envoy command operators). */
export const HTTP_LOG_FIELDS: Readonly<Record<string, string>> = Object.freeze({
  time: '%START_TIME%',
  listener: '',
  peer: '%DOWNSTREAM_PEER_URI_SAN%',
  tls: '%DOWNSTREAM_TLS_VERSION%',
  method: '%REQ(:METHOD)%',
  path: '%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%',
  status: '%RESPONSE_CODE%',
  details: '%RESPONSE_CODE_DETAILS%',
  flags: '%RESPONSE_FLAGS%',
  rbac: '%DYNAMIC_METADATA(envoy.filters.http.rbac)%',
  duration_ms: '%DURATION%',
});

/** The fields of a TCP access log line. */
export const TCP_LOG_FIELDS: Readonly<Record<string, string>> = Object.freeze({
  time: '%START_TIME%',
  listener: '',
  peer: '%DOWNSTREAM_PEER_URI_SAN%',
  tls: '%DOWNSTREAM_TLS_VERSION%',
  details: '%CONNECTION_TERMINATION_DETAILS%',
  flags: '%RESPONSE_FLAGS%',
  rbac: '%DYNAMIC_METADATA(envoy.filters.network.rbac)%',
  bytes_received: '%BYTES_RECEIVED%',
  bytes_sent: '%BYTES_SENT%',
  duration_ms: '%DURATION%',
});

/** A google.protobuf.Struct of string values in protobufjs form (its built-in google types use camelCase field names). */
function struct(values: Readonly<Record<string, string>>): XdsResource {
  return { fields: Object.fromEntries(Object.entries(values).map(([k, v]) => [k, { stringValue: v }])) };
}

/** One access log entry for a listener or connection manager; `path` absent: stdout. */
export function inboundAccessLog(listener: string, kind: 'http' | 'tcp', path: string | undefined): XdsResource {
  const fields = { ...(kind === 'http' ? HTTP_LOG_FIELDS : TCP_LOG_FIELDS), listener };
  const log_format = { json_format: struct(fields) };
  return path === undefined
    ? { name: 'envoy.access_loggers.stdout', typed_config: { '@type': STDOUT_T, log_format } }
    : { name: 'envoy.access_loggers.file', typed_config: { '@type': FILE_T, path, log_format } };
}
