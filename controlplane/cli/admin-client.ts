/** meshctl's client of the Admin API on <data-dir>/admin.sock. */
import { existsSync } from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { MeshError } from '../../lib/errors.js';
import { contract, fromServiceError } from '../../lib/proto/contract.js';

export interface AdminClient {
  call<T>(method: string, request?: unknown): Promise<T>;
  close(): void;
}

export function connectAdmin(dataDir: string): AdminClient {
  const socket = path.join(path.resolve(dataDir), 'admin.sock');
  if (!existsSync(socket)) {
    throw new MeshError(
      'MESH_E_CONTROLPLANE_UNAVAILABLE',
      `no control plane is running with data dir ${dataDir} (${socket} is missing); start mesh-controlplane run`,
      {
        details: { socket },
      },
    );
  }
  const { Admin } = contract();
  const client = new Admin(`unix:${socket}`, grpc.credentials.createInsecure()) as grpc.Client & Record<string, unknown>;
  return {
    call<T>(method: string, request: unknown = {}) {
      return new Promise<T>((resolve, reject) => {
        (client[method] as (r: unknown, m: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, v: T) => void) => void)(
          request,
          new grpc.Metadata(),
          { deadline: Date.now() + 60_000 },
          (err, value) => (err ? reject(fromServiceError(err, socket)) : resolve(value)),
        );
      });
    },
    close: () => client.close(),
  };
}
