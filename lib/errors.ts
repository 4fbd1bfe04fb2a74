/**
 * Errors with stable codes. The code is an API: scripts, dashboards and the
 * API edge (gRPC status, exit codes) match on it, so codes are never renamed or
 * reused. The message says what happened and, where it can, what to do.
 */

export const ERROR_CODES = {
  MESH_E_USAGE: 'a command line was not understood',
  MESH_E_CONFIG_INVALID: 'a configuration file or value is invalid',
  MESH_E_SPIFFE_ID_INVALID: 'a SPIFFE ID does not follow the SPIFFE ID specification',
  MESH_E_PROTO_LOAD: 'the Envoy API protos could not be loaded',
  MESH_E_PROTO_UNKNOWN_TYPE: 'a protobuf type or type URL is not known',
  MESH_E_PROTO_UNKNOWN_FIELD: 'an object has a field its protobuf type does not have',
  MESH_E_PROTO_INVALID: 'an object does not fit its protobuf type',
  MESH_E_PROVISION_TOOL_MISSING: 'a tool needed to provision test peers is not installed',
  MESH_E_PROVISION_FAILED: 'provisioning Envoy or Consul failed',
  MESH_E_PROCESS_START: 'a child process did not start or did not become ready',
  MESH_E_NETNS: 'a network namespace operation failed',
  MESH_E_WORKLOAD_INVALID: 'a workload file is invalid; the other workloads keep running',
  MESH_E_CONSUL_UNREACHABLE: 'the Consul HTTP API did not answer; the agent retries with backoff',
  MESH_E_CONSUL_REJECTED: 'Consul rejected a request (see the HTTP status and body)',
  MESH_E_HOST_FACTS:
    'the host facts (OS, network addresses) could not be read at start; set advertiseAddress and nodeName in the agent configuration',
  MESH_E_STORE: 'the control-plane database could not be opened or written',
  MESH_E_STORE_CORRUPT: 'the control-plane database failed its integrity check; restore a backup',
  MESH_E_CERT_INVALID: 'a certificate or PEM file cannot be read',
  MESH_E_KEY_UNSUPPORTED: 'a key type the mesh does not accept (ECDSA P-256 or Ed25519 only)',
  MESH_E_KEY_UNREADABLE: 'a private key file cannot be loaded',
  MESH_E_CSR_INVALID: 'a certificate signing request is malformed or its signature does not verify',
  MESH_E_CA_EXPIRED: 'the signing CA has expired',
  MESH_E_CA_IMPORT_INVALID: 'an imported CA certificate, key or chain is unusable',
  MESH_E_POLICY_INVALID: 'a policy document is invalid (index, kind, name and field path in details); nothing was stored',
  MESH_E_POLICY_NOT_FOUND: 'no policy resource of that kind and name',
  MESH_E_POLICY_CACHE_INVALID: 'the policy kept on disk cannot be read; it is ignored until the control plane sends a set',
  MESH_E_CA_ROTATION_STATE: 'a CA rotation step was asked for out of order',
  MESH_E_CA_ROOT_IN_USE: 'the previous root still has unexpired certificates chaining to it',
  MESH_E_CA_EXPORT_UNAVAILABLE: "the active CA's root key is not held by the control plane, so it cannot sign an exported intermediate",
  MESH_E_OUTPUT_EXISTS: 'an output file already exists; nothing was written (--force replaces it)',
  MESH_E_TOKEN_UNKNOWN: 'the join token is not known to the control plane',
  MESH_E_TOKEN_USED: 'the join token was already used; create a new one',
  MESH_E_TOKEN_EXPIRED: 'the join token expired; create a new one',
  MESH_E_NODE_UNKNOWN: 'the node is not known to the control plane',
  MESH_E_NODE_REVOKED: 'the node was revoked and can no longer obtain certificates',
  MESH_E_NOT_AUTHORIZED: 'the node is not allowed the SPIFFE ID it asked for',
  MESH_E_UNAUTHENTICATED: 'the request carried no valid node certificate',
  MESH_E_RATE_LIMITED: 'too many requests from this node; retry later',
  MESH_E_REQUEST_TOO_LARGE: 'a request is larger than the control plane accepts',
  MESH_E_AUDIT_FAILED: 'the audit row could not be written, so the operation was not done',
  MESH_E_KUBE_ATTESTATION_OFF:
    'this control plane does not attest Kubernetes pods (no kubernetes.attestation section in controlplane.yaml)',
  MESH_E_KUBE_NOT_ALLOWED: "the pod's namespace or service account is not allowed SVIDs by kubernetes.attestation.allow",
  MESH_E_KUBE_TOKEN_INVALID: 'the Kubernetes service-account token was refused by TokenReview (malformed, unknown signer or revoked)',
  MESH_E_KUBE_TOKEN_EXPIRED:
    'the Kubernetes service-account token has expired; the kubelet refreshes projected tokens, read the file again',
  MESH_E_KUBE_TOKEN_AUDIENCE:
    'the Kubernetes service-account token is not for the audience the control plane expects (kubernetes.attestation.audience)',
  MESH_E_KUBE_TOKEN_NOT_POD_BOUND: 'the Kubernetes service-account token is not bound to a pod; use a projected service-account token',
  MESH_E_KUBE_POD_GONE: 'the pod the token is bound to no longer exists, or a new pod of that name has another uid',
  MESH_E_KUBE_UNREACHABLE: 'the Kubernetes API server could not be reached or did not answer; nothing was issued, retry',
  MESH_E_KUBE_SYNC_FAILED:
    'the catalog sync could not list or watch Kubernetes, or write to Consul or Kubernetes; it retries with backoff and reconciles everything once it can',
  MESH_E_KUBE_SYNC_CONFLICT:
    'an object the catalog sync would write (a Service or EndpointSlice, a ServiceIdentity) exists and is not its own; the sync leaves it alone and skips that name',
  MESH_E_CONTROLPLANE_UNAVAILABLE: 'the control plane could not be reached',
  MESH_E_CONTROLPLANE_UNSUPPORTED: 'the control plane does not offer this call (it is older than the agent); the agent goes on without it',
  MESH_E_NOT_JOINED: 'this host has not joined the mesh yet (run mesh-agent join)',
  MESH_E_ALREADY_JOINED: 'this host already joined the mesh; its identity was left untouched (mesh-agent join --force replaces it)',
  MESH_E_XDS_SNAPSHOT_INVALID: 'a data-plane snapshot failed its checks and was not served; Envoy keeps the previous one',
  MESH_E_XDS_LISTEN: 'the agent could not open its ADS socket for Envoy',
  MESH_E_XDS_NACK: 'Envoy rejected a configuration the agent sent; it keeps serving the previous one',
  MESH_E_AGENT_UNREACHABLE: 'the running agent did not answer on its status listener',
  MESH_E_ENVOY_RELOAD: 'a hot restart of Envoy failed or its new bootstrap was rejected; the running Envoy keeps its previous one',
  MESH_E_STOPPING: 'the agent is stopping; start-up was cut short and what it had made is undone',
  MESH_E_TRUST_DOMAIN_MISMATCH: 'the configured trust domain differs from the one this host joined',
  MESH_E_TPROXY_IPTABLES: 'an iptables save or restore failed (its stderr is in the message); the rules of that table are unchanged',
  MESH_E_TPROXY_NO_IPTABLES: 'the iptables programs the transparent proxy needs are not installed (the message names them)',
  MESH_E_TPROXY_USER: 'the user or group Envoy should run as does not exist; create it or set envoy.user / envoy.group',
  MESH_E_TPROXY_RESOLVE: 'an address the transparent proxy must exempt (control plane, Consul) could not be resolved',
  MESH_E_TPROXY_PRIVILEGE:
    'transparent proxy capture needs CAP_NET_ADMIN: run the agent as root, or grant it (AmbientCapabilities=CAP_NET_ADMIN in the unit, or setcap)',
  MESH_E_TPROXY_LIFTED: 'capture is lifted: Envoy is not ready and failurePolicy is open, so traffic flows directly, not through the mesh',
  MESH_E_DNS_PROXY:
    "the DNS proxy of the DNS capture could not start (its port or its upstream source port is taken, resolv.conf cannot be read, or Consul's DNS address does not resolve)",
  MESH_E_INTERNAL: 'an internal error; please report it',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface MeshErrorOptions {
  /** Structured context (file, field path, values). Never secrets. */
  details?: Record<string, unknown>;
  cause?: unknown;
}

export class MeshError extends Error {
  readonly code: ErrorCode;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, message: string, options: MeshErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'MeshError';
    this.code = code;
    this.details = Object.freeze({ ...(options.details ?? {}) });
  }

  toJSON(): { code: ErrorCode; message: string; details: Readonly<Record<string, unknown>> } {
    return { code: this.code, message: this.message, details: this.details };
  }
}

export function isMeshError(err: unknown, code?: ErrorCode): err is MeshError {
  return err instanceof MeshError && (code === undefined || err.code === code);
}

/** Wraps anything thrown into a MeshError, keeping an existing code. */
export function toMeshError(err: unknown, fallback: ErrorCode = 'MESH_E_INTERNAL'): MeshError {
  if (err instanceof MeshError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new MeshError(fallback, message, { cause: err });
}
