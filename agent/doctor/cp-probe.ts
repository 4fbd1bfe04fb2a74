/**
 * The control plane as doctor sees it: a TLS handshake verified against the
 * joined bundle and the control plane's SPIFFE ID (no gRPC, so "down" and
 * "not who it should be" stay apart), and one read-only call whose answer
 * carries the server's clock.
 */
import * as grpc from '@grpc/grpc-js';
import { contract } from '../../lib/proto/contract.js';
import { SERVER_TIME_HEADER } from '../../lib/server-time.js';
import type { ControlPlaneProbe, ControlPlaneTarget, HandshakeResult, ServerTime } from './probes.js';

const TIMEOUT_MS = 5_000;
/** Socket errors that mean nothing answered there (as opposed to something that answered wrongly). */
const UNREACHABLE = new Set(['ECONNREFUSED', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ECONNRESET']);

const controlPlaneId = (trustDomain: string) => `spiffe://${trustDomain}/mesh/controlplane`;

function splitAddress(address: string): { host: string; port: number } {
  const at = address.lastIndexOf(':');
  return { host: address.slice(0, at).replace(/^\[|\]$/g, ''), port: Number(address.slice(at + 1)) };
}

/**
 * node:tls is imported here, when doctor runs, not at the top: an ES module
 * import of a built-in module reads every export of it, and node:tls's
 * `rootCertificates` then turns node's 144 root certificates into strings
 * (220 KB) that `mesh-agent run`, bundled with this module, would keep.
 */
async function handshake(target: ControlPlaneTarget): Promise<HandshakeResult> {
  const tls = await import('node:tls');
  const expected = controlPlaneId(target.trustDomain);
  const { host, port } = splitAddress(target.address);
  return new Promise((resolve) => {
    let identityError: string | undefined;
    const socket = tls.connect({
      host,
      port,
      ca: target.bundlePem,
      servername: 'mesh-controlplane',
      ALPNProtocols: ['h2'],
      rejectUnauthorized: true,
      checkServerIdentity: (_name, cert) => {
        const sans = (cert.subjectaltname ?? '').split(/,\s*/);
        if (sans.includes(`URI:${expected}`)) return undefined;
        identityError = `it presented ${cert.subjectaltname ?? 'no SAN'}, not ${expected}`;
        return new Error(identityError);
      },
    });
    const done = (result: HandshakeResult) => {
      socket.destroy();
      resolve(result);
    };
    socket.setTimeout(TIMEOUT_MS, () => done({ ok: false, kind: 'unreachable', reason: `no TLS answer within ${TIMEOUT_MS / 1000} s` }));
    socket.once('secureConnect', () => {
      const cert = socket.getPeerCertificate();
      done({ ok: true, spiffeId: expected, notAfter: Date.parse(cert.valid_to) });
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      if (identityError !== undefined) return done({ ok: false, kind: 'identity', reason: identityError });
      const code = err.code ?? '';
      if (UNREACHABLE.has(code)) return done({ ok: false, kind: 'unreachable', reason: `${code}: ${err.message}` });
      // Any certificate error: the server's chain does not verify against the joined bundle.
      done({ ok: false, kind: 'identity', reason: `${code === '' ? '' : `${code}: `}${err.message}` });
    });
  });
}

type UnaryMethod = (
  req: unknown,
  meta: grpc.Metadata,
  opts: grpc.CallOptions,
  cb: (err: grpc.ServiceError | null, res: unknown) => void,
) => grpc.ClientUnaryCall;

function serverTime(target: ControlPlaneTarget, clock: () => number): Promise<ServerTime | undefined> {
  const expected = `URI:${controlPlaneId(target.trustDomain)}`;
  const credentials = grpc.credentials.createSsl(
    Buffer.from(target.bundlePem),
    target.node ? Buffer.from(target.node.keyPem) : null,
    target.node ? Buffer.from(target.node.chainPem) : null,
    {
      checkServerIdentity: (_host, cert) =>
        (cert.subjectaltname ?? '').split(/,\s*/).includes(expected) ? undefined : new Error(`not ${expected}`),
    },
  );
  const { Identity } = contract();
  const client = new Identity(target.address, credentials, { 'grpc.ssl_target_name_override': 'mesh-controlplane' }) as grpc.Client &
    Record<string, UnaryMethod>;
  const fromMetadata = (md: grpc.Metadata | undefined) => {
    const value = md?.get(SERVER_TIME_HEADER)[0];
    return value === undefined ? undefined : Number(value);
  };
  return new Promise((resolve) => {
    let serverMs: number | undefined;
    const sentMs = clock();
    const call = (client.GetBundle as UnaryMethod)({}, new grpc.Metadata(), { deadline: Date.now() + TIMEOUT_MS }, (err) => {
      const receivedMs = clock();
      serverMs ??= fromMetadata(err?.metadata);
      client.close();
      resolve(serverMs === undefined || !Number.isFinite(serverMs) ? undefined : { serverMs, sentMs, receivedMs });
    });
    call.on('metadata', (md: grpc.Metadata) => {
      serverMs ??= fromMetadata(md);
    });
  });
}

export function controlPlaneProbe(clock: () => number): ControlPlaneProbe {
  return { handshake, serverTime: (target) => serverTime(target, clock) };
}
