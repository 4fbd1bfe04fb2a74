/**
 * The agent's certificate signing requests, made with @peculiar/x509: a
 * minimal PKCS#10 request (empty subject unless a common name is given, no
 * attributes); the control plane decides everything else and takes only the
 * public key. The library is loaded on the first request, not when the agent
 * starts (loading it costs about half a second and 15 MB; see peculiar.ts).
 */
import type { KeyObject } from 'node:crypto';

export async function createCsr(privateKey: KeyObject, publicKey: KeyObject, commonName?: string): Promise<Buffer> {
  const { derOf, webKeyPair, x509 } = await import('./peculiar.js');
  const keys = await webKeyPair(privateKey, publicKey);
  const request = await x509.Pkcs10CertificateRequestGenerator.create({
    keys,
    signingAlgorithm: keys.signingAlgorithm,
    ...(commonName === undefined ? {} : { name: [{ '2.5.4.3': [commonName] }] }),
  });
  return derOf(request);
}
