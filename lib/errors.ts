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
