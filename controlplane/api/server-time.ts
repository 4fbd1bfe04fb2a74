/** A server interceptor that adds the control plane's clock to every answer (lib/server-time.ts says why). */
import * as grpc from '@grpc/grpc-js';
import type { Clock } from '../../lib/clock.js';
import { SERVER_TIME_HEADER } from '../../lib/server-time.js';

export function serverTimeInterceptor(clock: Clock): grpc.ServerInterceptor {
  return (_method, call) => {
    let sent = false;
    return new grpc.ServerInterceptingCall(call, {
      sendMetadata(metadata, next) {
        metadata.set(SERVER_TIME_HEADER, String(clock.now()));
        sent = true;
        next(metadata);
      },
      sendStatus(status, next) {
        // A call that fails before any answer sends trailers only: the time goes there.
        if (sent) return next(status);
        const metadata = status.metadata ?? new grpc.Metadata();
        metadata.set(SERVER_TIME_HEADER, String(clock.now()));
        next({ ...status, metadata });
      },
    });
  };
}
