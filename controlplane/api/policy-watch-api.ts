/**
 * The Policy gRPC service: Watch, a server stream of the policy that concerns
 * the calling node. Served on the Identity API's mTLS server and
 * authenticated the same way: the node certificate must be on record and the
 * node active (unknown or revoked nodes are refused; a node revoked while
 * streaming has its streams ended by the control plane, see endNode).
 *
 * Updates are encoded once per group by the fan-out; the service definition's
 * serializer passes those bytes through as they are.
 */
import * as grpc from '@grpc/grpc-js';
import { MeshError, toMeshError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { toServiceError } from '../../lib/proto/contract.js';
import type { IdentityService } from '../identity-service.js';
import type { ControlPlaneMetrics } from '../metrics/controlplane-metrics.js';
import type { PolicyFanout, PolicyUpdateMessage } from '../policy/policy-fanout.js';
import { peerCertificate } from './handlers.js';

interface WatchRequest {
  revision: number;
  services: string[];
  spiffe_ids: string[];
}

/** At most this many services or SPIFFE IDs in one request. */
const MAX_INTEREST = 4096;

/**
 * The Policy service definition with a Watch serializer that writes
 * pre-encoded updates (Buffers) as they are, and a function to encode one.
 */
export function policyServiceDefinition(service: grpc.ServiceDefinition): {
  definition: grpc.ServiceDefinition;
  encode: (update: PolicyUpdateMessage) => Buffer;
} {
  const watch = service.Watch as grpc.MethodDefinition<unknown, unknown>;
  const serialize = watch.responseSerialize;
  return {
    definition: {
      ...service,
      Watch: { ...watch, responseSerialize: (value: unknown) => (Buffer.isBuffer(value) ? value : serialize(value)) },
    },
    encode: (update) => serialize(update),
  };
}

export function policyWatchHandlers(deps: {
  identity: IdentityService;
  fanout: PolicyFanout;
  logger: Logger;
  metrics?: Pick<ControlPlaneMetrics, 'recordDenial'>;
}): grpc.UntypedServiceImplementation {
  const { identity, fanout, logger } = deps;
  return {
    Watch: (call: grpc.ServerWritableStream<WatchRequest, Buffer>) => {
      let node: string;
      try {
        node = identity.authenticate(peerCertificate(call)).node;
        identity.requireActive(node);
        const req = call.request;
        if ((req.services?.length ?? 0) > MAX_INTEREST || (req.spiffe_ids?.length ?? 0) > MAX_INTEREST)
          throw new MeshError('MESH_E_USAGE', `a policy watch may name at most ${MAX_INTEREST} services and SPIFFE IDs`);
      } catch (err) {
        const e = toMeshError(err);
        logger.debug('policy watch refused', { code: e.code });
        deps.metrics?.recordDenial('Policy.Watch', e.code);
        call.emit('error', toServiceError(e));
        return;
      }
      // Headers at once: the agent knows the watch is open even when nothing is sent (it holds the current revision).
      call.sendMetadata(new grpc.Metadata());
      let ended = false;
      const subscription = fanout.subscribe(
        {
          node,
          write: (bytes) => call.write(bytes),
          end: (error) => {
            ended = true;
            call.emit('error', toServiceError(error));
          },
        },
        {
          revision: Number(call.request.revision ?? 0),
          interest: { services: call.request.services ?? [], spiffeIds: call.request.spiffe_ids ?? [] },
        },
      );
      call.on('drain', () => subscription.drained());
      const done = () => {
        if (!ended) subscription.close();
        ended = true;
      };
      call.on('cancelled', done);
      call.on('close', done);
      call.on('error', done);
      call.on('finish', done);
    },
  };
}
