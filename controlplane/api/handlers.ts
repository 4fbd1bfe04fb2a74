/** Wraps service functions as grpc-js handlers; the only place errors become gRPC statuses. */
import type * as grpc from '@grpc/grpc-js';
import { toMeshError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { toServiceError } from '../../lib/proto/contract.js';

/** Told of each answered call (metrics): its time, and the error code when it was refused. */
export type CallObserver = (method: string, ms: number, code?: string) => void;

export function unary<Req, Res>(
  logger: Logger,
  method: string,
  fn: (request: Req, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res> | Res,
  observe?: CallObserver,
) {
  return (call: grpc.ServerUnaryCall<Req, Res>, callback: grpc.sendUnaryData<Res>) => {
    const started = performance.now();
    Promise.resolve()
      .then(() => fn(call.request, call))
      .then(
        (response) => {
          observe?.(method, performance.now() - started);
          callback(null, response);
        },
        (err: unknown) => {
          const e = toMeshError(err);
          observe?.(method, performance.now() - started, e.code);
          if (e.code === 'MESH_E_INTERNAL') logger.error('request failed', { method, err: e });
          else logger.debug('request denied', { method, code: e.code });
          callback(toServiceError(e) as grpc.ServiceError, null);
        },
      );
  };
}

/** DER of the client's leaf certificate, when it presented one. */
export function peerCertificate(call: { getAuthContext?: () => { sslPeerCertificate?: { raw?: Buffer } } | null }): Buffer | undefined {
  return call.getAuthContext?.()?.sslPeerCertificate?.raw;
}
