/**
 * One call through the `consul` package, with our error codes and cancellation.
 * papi (the package's HTTP layer) cancels a request when its context emits
 * `cancel`; an AbortSignal is bridged to that. A network failure or timeout is
 * MESH_E_CONSUL_UNREACHABLE; an HTTP error is MESH_E_CONSUL_REJECTED with the status
 * and Consul's own message (papi keeps only short plain-text bodies in its message,
 * so it is read from the response); an aborted call rejects with the signal's reason.
 */
import { EventEmitter } from 'node:events';
import { MeshError } from '../../lib/errors.js';

/** papi's request context: `cancel` aborts the request; includeResponse makes the package return [response, body]. */
export interface PapiContext extends EventEmitter {
  includeResponse?: boolean;
  canceled?: boolean;
}

interface PapiError extends Error {
  isResponse?: boolean;
  isValidation?: boolean;
  response?: { statusCode?: number; body?: unknown };
}

function bodyText(body: unknown): string {
  if (body === undefined || body === null) return '';
  if (typeof body === 'string') return body;
  if (Buffer.isBuffer(body)) return body.toString('utf8');
  return JSON.stringify(body);
}

export function toConsulError(address: string, what: string, err: unknown): MeshError {
  const e = err as PapiError;
  if (e?.isResponse === true) {
    const status = e.response?.statusCode ?? 0;
    const message = bodyText(e.response?.body).trim() || e.message;
    return new MeshError('MESH_E_CONSUL_REJECTED', `Consul rejected ${what}: HTTP ${status}: ${message.slice(0, 500)}`, {
      details: { address, call: what, status },
    });
  }
  if (e?.isValidation === true) {
    // The package refused to build the request (a missing field): as final as a 400.
    return new MeshError('MESH_E_CONSUL_REJECTED', `the consul client refused ${what}: ${e.message}`, {
      details: { address, call: what },
      cause: err,
    });
  }
  return new MeshError(
    'MESH_E_CONSUL_UNREACHABLE',
    `Consul at ${address} did not answer ${what}: ${(err as Error)?.message ?? String(err)}`,
    {
      details: { address, call: what },
      cause: err,
    },
  );
}

export async function consulCall<T>(
  address: string,
  what: string,
  run: (ctx: PapiContext) => Promise<T>,
  signal?: AbortSignal,
): Promise<T> {
  signal?.throwIfAborted();
  const ctx: PapiContext = new EventEmitter();
  const cancel = () => {
    ctx.canceled = true;
    ctx.emit('cancel');
  };
  signal?.addEventListener('abort', cancel, { once: true });
  try {
    return await run(ctx);
  } catch (err) {
    if (signal?.aborted === true) throw signal.reason;
    throw toConsulError(address, what, err);
  } finally {
    signal?.removeEventListener('abort', cancel);
  }
}
