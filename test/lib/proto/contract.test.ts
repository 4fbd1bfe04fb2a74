import * as grpc from '@grpc/grpc-js';
import t from 'tap';
import { ERROR_CODES, type ErrorCode, MeshError } from '../../../lib/errors.js';
import { contract, contractProtoPath, fromServiceError, toServiceError } from '../../../lib/proto/contract.js';

/** What a grpc-js client sees: a ServiceError built from what the handler returned. */
function received(partial: Partial<grpc.ServiceError>): grpc.ServiceError {
  return Object.assign(new Error(`${partial.code}: ${partial.details}`), {
    code: partial.code ?? grpc.status.UNKNOWN,
    details: partial.details ?? '',
    metadata: partial.metadata ?? new grpc.Metadata(),
  });
}

t.test('every error code round-trips through the mesh-error-code trailer', async (t) => {
  for (const code of Object.keys(ERROR_CODES) as ErrorCode[]) {
    const sent = toServiceError(new MeshError(code, `message for ${code}`));
    t.same(sent.metadata?.get('mesh-error-code'), [code]);
    t.equal(sent.details, `message for ${code}`);
    const back = fromServiceError(received(sent), 'unix:/x/admin.sock');
    t.equal(back.code, code, code);
    t.equal(back.message, `message for ${code}`);
    t.same(back.details, { target: 'unix:/x/admin.sock' });
  }
});

t.test('gRPC status by code', async (t) => {
  const status = (code: ErrorCode) => toServiceError(new MeshError(code, 'x')).code;
  t.equal(status('MESH_E_USAGE'), grpc.status.INVALID_ARGUMENT);
  t.equal(status('MESH_E_CSR_INVALID'), grpc.status.INVALID_ARGUMENT);
  t.equal(status('MESH_E_CA_IMPORT_INVALID'), grpc.status.INVALID_ARGUMENT);
  t.equal(status('MESH_E_RATE_LIMITED'), grpc.status.RESOURCE_EXHAUSTED);
  t.equal(status('MESH_E_TOKEN_USED'), grpc.status.PERMISSION_DENIED);
  t.equal(status('MESH_E_NODE_REVOKED'), grpc.status.PERMISSION_DENIED);
  t.equal(status('MESH_E_NODE_UNKNOWN'), grpc.status.NOT_FOUND);
  t.equal(status('MESH_E_UNAUTHENTICATED'), grpc.status.UNAUTHENTICATED);
  t.equal(status('MESH_E_CA_ROTATION_STATE'), grpc.status.FAILED_PRECONDITION);
  t.equal(status('MESH_E_STORE'), grpc.status.INTERNAL, 'unmapped codes are INTERNAL');
  t.equal(status('MESH_E_INTERNAL'), grpc.status.INTERNAL);
});

t.test('errors without a mesh code', async (t) => {
  for (const code of [grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED]) {
    const e = fromServiceError(received({ code, details: 'connect ECONNREFUSED' }), '127.0.0.1:8443');
    t.equal(e.code, 'MESH_E_CONTROLPLANE_UNAVAILABLE');
    t.match(e.message, 'the control plane at 127.0.0.1:8443 is not reachable: connect ECONNREFUSED');
    t.match(e.details, { target: '127.0.0.1:8443', grpcStatus: code });
  }
  const internal = fromServiceError(received({ code: grpc.status.UNIMPLEMENTED, details: 'method not found' }), 'cp:1');
  t.equal(internal.code, 'MESH_E_INTERNAL');
  t.match(internal.message, 'the control plane at cp:1 failed: method not found');

  const md = new grpc.Metadata();
  md.set('mesh-error-code', 'MESH_E_NOT_A_CODE');
  t.equal(
    fromServiceError(received({ code: grpc.status.UNAVAILABLE, details: 'x', metadata: md }), 't').code,
    'MESH_E_CONTROLPLANE_UNAVAILABLE',
  );
  t.equal(
    fromServiceError(received({ code: grpc.status.INTERNAL, details: 'x', metadata: md }), 't').code,
    'MESH_E_INTERNAL',
    'unknown codes are not trusted',
  );
  const proto = new grpc.Metadata();
  proto.set('mesh-error-code', 'toString');
  t.equal(fromServiceError(received({ code: grpc.status.INTERNAL, metadata: proto }), 't').code, 'MESH_E_INTERNAL');
  const noDetails = fromServiceError(received({ code: grpc.status.UNKNOWN }), 't');
  t.equal(noDetails.code, 'MESH_E_INTERNAL');
  t.match(noDetails.message, /failed: \d+: /, 'falls back to the error message');
});

t.test('the contract loads both services', async (t) => {
  t.match(contractProtoPath(), /mesh\/controlplane\/v1\/controlplane\.proto$/);
  const c = contract();
  t.equal(contract(), c, 'loaded once');
  for (const method of [
    'CreateToken',
    'ListNodes',
    'RevokeNode',
    'GetBundle',
    'ImportCa',
    'RotateCa',
    'GetCaStatus',
    'ListAudit',
    'Backup',
    'Status',
  ]) {
    t.ok(c.Admin.service[method], `Admin.${method}`);
  }
  t.ok(Object.keys(c.Identity.service).length > 0);
});
