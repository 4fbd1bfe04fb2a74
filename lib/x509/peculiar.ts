/**
 * The one module that loads @peculiar/x509, used wherever certificates are
 * made or examined off the signing hot path: CA generation, `ca import` chain
 * building, `meshctl cert inspect` (the agent's CSRs are DER from csr-builder.ts,
 * so the agent never loads it). Import it from here only:
 * the library resolves its algorithms through tsyringe, which needs the
 * reflect-metadata polyfill loaded first (ES modules evaluate imports in
 * order, so the first line below runs before the library does).
 *
 * Its crypto provider is Node 20's built-in WebCrypto rather than
 * @peculiar/webcrypto (a JavaScript WebCrypto over node:crypto): in
 * bench/x509-sign.ts the built-in one is as fast or faster at every step
 * (agent CSR and CA pair within a few percent, chain build and leaves 10-35 %
 * faster), and it is one dependency less; see the dependency table.
 */
import 'reflect-metadata';
import { type KeyObject, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { MeshError } from '../errors.js';

x509.cryptoProvider.set(webcrypto as never);

export { x509 };

type WebCryptoKey = webcrypto.CryptoKey;

/** How WebCrypto imports and signs with one of the key types the mesh signs with. */
interface Algorithms {
  import: webcrypto.EcKeyImportParams | webcrypto.RsaHashedImportParams | webcrypto.Algorithm;
  sign: webcrypto.EcdsaParams | webcrypto.Algorithm;
}

/** ECDSA P-256 and Ed25519 (and RSA, which an operator's imported root may use); SHA-256 throughout. */
export function webAlgorithms(key: KeyObject): Algorithms {
  if (key.asymmetricKeyType === 'ed25519') return { import: { name: 'Ed25519' }, sign: { name: 'Ed25519' } };
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') {
    return {
      import: { name: 'ECDSA', namedCurve: 'P-256' } as webcrypto.EcKeyImportParams,
      sign: { name: 'ECDSA', hash: 'SHA-256' } as webcrypto.EcdsaParams,
    };
  }
  if (key.asymmetricKeyType === 'rsa') {
    const rsa = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
    return { import: rsa as webcrypto.RsaHashedImportParams, sign: rsa };
  }
  throw new MeshError('MESH_E_KEY_UNSUPPORTED', `unsupported key type ${key.asymmetricKeyType ?? 'unknown'}`);
}

export interface WebKeyPair {
  privateKey: WebCryptoKey;
  publicKey: WebCryptoKey;
  /** The signing algorithm for this key, as @peculiar/x509's generators take it. */
  signingAlgorithm: webcrypto.EcdsaParams | webcrypto.Algorithm;
}

/** A Node private key as a WebCrypto signing key (Node 20 has no KeyObject.toCryptoKey: a PKCS#8 round trip, whose DER is zeroed after the import). */
export async function webSigner(privateKey: KeyObject): Promise<Omit<WebKeyPair, 'publicKey'>> {
  const algorithms = webAlgorithms(privateKey);
  const der = privateKey.export({ type: 'pkcs8', format: 'der' });
  try {
    return {
      privateKey: await webcrypto.subtle.importKey('pkcs8', der, algorithms.import, false, ['sign']),
      signingAlgorithm: algorithms.sign,
    };
  } finally {
    // The CryptoKey holds its own copy: leave no plaintext key bytes behind in a buffer the GC frees whenever.
    der.fill(0);
  }
}

/** A Node key pair as WebCrypto keys. */
export async function webKeyPair(privateKey: KeyObject, publicKey: KeyObject): Promise<WebKeyPair> {
  const algorithms = webAlgorithms(privateKey);
  const [signer, pub] = await Promise.all([
    webSigner(privateKey),
    webcrypto.subtle.importKey('spki', publicKey.export({ type: 'spki', format: 'der' }), algorithms.import, true, ['verify']),
  ]);
  return { ...signer, publicKey: pub };
}

/** The DER of a @peculiar/x509 object (certificate, request) as a Buffer. */
export function derOf(object: { rawData: ArrayBuffer }): Buffer {
  return Buffer.from(object.rawData);
}
