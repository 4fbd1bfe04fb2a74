/**
 * grpc-js answers every call's getAuthContext() with a fresh
 * TLSSocket.getPeerCertificate(), which decodes the whole certificate and
 * computes three fingerprints: 7% of the control plane's main thread per
 * issuance, for a certificate that cannot change on that connection. This
 * memoizes the non-detailed form per socket. Only for TLS 1.3, which has no
 * renegotiation; a TLS 1.2 peer could renegotiate with another certificate,
 * so those sockets are asked every time. Installed once per process by the
 * control plane; results are the same objects Node would build, so other
 * users of TLS in the process see no difference but the speed.
 */
import type { PeerCertificate } from 'node:tls';
import { TLSSocket } from 'node:tls';

const cache = new WeakMap<TLSSocket, PeerCertificate>();
let installed = false;

export function installPeerCertificateCache(): void {
  if (installed) return;
  installed = true;
  const original = TLSSocket.prototype.getPeerCertificate;
  function getPeerCertificate(this: TLSSocket, detailed?: boolean): PeerCertificate {
    if (detailed === true) return original.call(this, true);
    const hit = cache.get(this);
    if (hit !== undefined) return hit;
    const cert = original.call(this, false);
    if (cert?.raw !== undefined && this.getProtocol() === 'TLSv1.3') cache.set(this, cert);
    return cert;
  }
  TLSSocket.prototype.getPeerCertificate = getPeerCertificate as typeof original;
}
