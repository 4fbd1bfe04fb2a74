/**
 * Whether a certificate chain leads to a trust bundle, checked with Node's
 * X509Certificate (signatures and issuer names, link by link), for tests that
 * follow many SVIDs and rotations and want a quick yes or no. The checkers
 * with their own reasons are in svid-verify.ts: go-spiffe and `openssl verify`.
 */
import { X509Certificate } from 'node:crypto';
import { splitPemChain } from './svid-verify.js';

const validAt = (cert: X509Certificate, at: number) => Date.parse(cert.validFrom) <= at && Date.parse(cert.validTo) >= at;

/**
 * True if chainPem (leaf first, then intermediates) chains, signature by
 * signature, to one of the roots in bundlePem, with every certificate of the
 * chain and that root valid at `at` (default now).
 */
export function chainsToBundle(chainPem: string, bundlePem: string, at = Date.now()): boolean {
  const chain = splitPemChain(chainPem).map((pem) => new X509Certificate(pem));
  const roots = splitPemChain(bundlePem).map((pem) => new X509Certificate(pem));
  for (const [i, cert] of chain.entries()) {
    if (!validAt(cert, at)) return false;
    const issuer = chain[i + 1];
    if (issuer !== undefined && !(cert.checkIssued(issuer) && cert.verify(issuer.publicKey))) return false;
  }
  const top = chain.at(-1);
  return top !== undefined && roots.some((root) => validAt(root, at) && top.checkIssued(root) && top.verify(root.publicKey));
}
