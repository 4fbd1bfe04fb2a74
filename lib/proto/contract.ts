/**
 * Loads the agent <-> control-plane wire contract (mesh.controlplane.v1) for
 * grpc-js, and carries MeshError codes across the wire: the server puts the
 * code in the `mesh-error-code` trailer, the client turns it back into a
 * MeshError with the same code.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ERROR_CODES, type ErrorCode, MeshError } from '../errors.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const RELATIVE = path.join('mesh', 'controlplane', 'v1', 'controlplane.proto');

export function contractProtoPath(): string {
  // Next to this file in the sources; from dist/lib/proto, back in the sources.
  for (const candidate of [path.join(here, RELATIVE), path.join(here, '..', '..', '..', 'lib', 'proto', RELATIVE)]) {
    if (existsSync(candidate)) return candidate;
  }
  throw new MeshError('MESH_E_INTERNAL', `the wire contract ${RELATIVE} is missing next to ${here}`);
}

type ServiceCtor = grpc.ServiceClientConstructor;

export interface Contract {
  Identity: ServiceCtor;
  Admin: ServiceCtor;
  Policy: ServiceCtor;
  NodeStatus: ServiceCtor;
}

let cached: Contract | undefined;

export function contract(): Contract {
  if (cached) return cached;
  const definition = protoLoader.loadSync(contractProtoPath(), { keepCase: true, longs: Number, enums: String, defaults: true });
  const pkg = grpc.loadPackageDefinition(definition) as unknown as { mesh: { controlplane: { v1: Contract } } };
  cached = pkg.mesh.controlplane.v1;
  return cached;
}

const STATUS_OF: Partial<Record<ErrorCode, grpc.status>> = {
  MESH_E_USAGE: grpc.status.INVALID_ARGUMENT,
  MESH_E_SPIFFE_ID_INVALID: grpc.status.INVALID_ARGUMENT,
  MESH_E_CSR_INVALID: grpc.status.INVALID_ARGUMENT,
  MESH_E_KEY_UNSUPPORTED: grpc.status.INVALID_ARGUMENT,
  MESH_E_CA_IMPORT_INVALID: grpc.status.INVALID_ARGUMENT,
  MESH_E_POLICY_INVALID: grpc.status.INVALID_ARGUMENT,
  MESH_E_POLICY_NOT_FOUND: grpc.status.NOT_FOUND,
  MESH_E_REQUEST_TOO_LARGE: grpc.status.RESOURCE_EXHAUSTED,
  MESH_E_RATE_LIMITED: grpc.status.RESOURCE_EXHAUSTED,
  MESH_E_TOKEN_UNKNOWN: grpc.status.PERMISSION_DENIED,
  MESH_E_TOKEN_USED: grpc.status.PERMISSION_DENIED,
  MESH_E_TOKEN_EXPIRED: grpc.status.PERMISSION_DENIED,
  MESH_E_NOT_AUTHORIZED: grpc.status.PERMISSION_DENIED,
  MESH_E_NODE_REVOKED: grpc.status.PERMISSION_DENIED,
  MESH_E_NODE_UNKNOWN: grpc.status.NOT_FOUND,
  MESH_E_KUBE_ATTESTATION_OFF: grpc.status.FAILED_PRECONDITION,
  MESH_E_KUBE_NOT_ALLOWED: grpc.status.PERMISSION_DENIED,
  MESH_E_KUBE_TOKEN_INVALID: grpc.status.UNAUTHENTICATED,
  MESH_E_KUBE_TOKEN_EXPIRED: grpc.status.UNAUTHENTICATED,
  MESH_E_KUBE_TOKEN_AUDIENCE: grpc.status.UNAUTHENTICATED,
  MESH_E_KUBE_TOKEN_NOT_POD_BOUND: grpc.status.UNAUTHENTICATED,
  MESH_E_KUBE_POD_GONE: grpc.status.PERMISSION_DENIED,
  MESH_E_KUBE_UNREACHABLE: grpc.status.UNAVAILABLE,
  MESH_E_UNAUTHENTICATED: grpc.status.UNAUTHENTICATED,
  MESH_E_CA_ROTATION_STATE: grpc.status.FAILED_PRECONDITION,
  MESH_E_CA_ROOT_IN_USE: grpc.status.FAILED_PRECONDITION,
  MESH_E_CA_EXPIRED: grpc.status.FAILED_PRECONDITION,
};

/** The gRPC error a handler returns for a MeshError: status by code, the code in trailers. */
export function toServiceError(err: MeshError): Partial<grpc.ServiceError> {
  const metadata = new grpc.Metadata();
  metadata.set('mesh-error-code', err.code);
  return { code: STATUS_OF[err.code] ?? grpc.status.INTERNAL, details: err.message, metadata };
}

/** The MeshError a client sees for a failed call. */
export function fromServiceError(err: grpc.ServiceError, target: string): MeshError {
  const code = err.metadata?.get('mesh-error-code')[0];
  if (typeof code === 'string' && Object.hasOwn(ERROR_CODES, code)) {
    return new MeshError(code as ErrorCode, err.details, { details: { target } });
  }
  if (err.code === grpc.status.UNAVAILABLE || err.code === grpc.status.DEADLINE_EXCEEDED) {
    return new MeshError('MESH_E_CONTROLPLANE_UNAVAILABLE', `the control plane at ${target} is not reachable: ${err.details}`, {
      details: { target, grpcStatus: err.code },
      cause: err,
    });
  }
  return new MeshError('MESH_E_INTERNAL', `the control plane at ${target} failed: ${err.details || err.message}`, {
    details: { target },
    cause: err,
  });
}
