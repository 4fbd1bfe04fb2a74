/**
 * PKCS#10 certificate signing requests on the control plane's hot path: it
 * parses them (csr-structure.ts), checks the key type (spki.ts) and the
 * self-signature, and takes nothing but the public key from them. The agent
 * makes them with csr-builder.ts (the key never leaves the host).
 */
import { type KeyObject, sign, verify } from 'node:crypto';
import { MeshError } from '../errors.js';
import { type CsrParts, readCsr } from './csr-structure.js';
import { DerError, oid, seq, Tag } from './der.js';
import { OID } from './oids.js';
import { type KeyType, keyTypeOf, publicKeyFromSpki } from './spki.js';

export interface ParsedCsr {
  publicKey: KeyObject;
  keyType: KeyType;
  /** SubjectPublicKeyInfo DER encoded from the parsed key (never the request's bytes); the certificate carries it. */
  spki: Buffer;
}

export function signatureAlgorithmFor(key: KeyObject): Buffer {
  const type = keyTypeOf(key);
  if (type === 'ed25519') return seq(oid(OID.ed25519));
  if (type === 'ec-p256') return seq(oid(OID.ecdsaWithSha256));
  if (key.asymmetricKeyType === 'rsa') return seq(oid(OID.sha256WithRsa), Buffer.from([Tag.NULL, 0]));
  throw new MeshError('MESH_E_KEY_UNSUPPORTED', `unsupported key type ${key.asymmetricKeyType ?? 'unknown'}`);
}

/** Signs data the way X.509 and PKCS#10 expect for this private key. */
export function signWith(privateKey: KeyObject, data: Uint8Array): Buffer {
  if (privateKey.asymmetricKeyType === 'ed25519') return sign(null, data, privateKey);
  return sign('sha256', data, { key: privateKey, dsaEncoding: 'der' });
}

function invalid(reason: string, cause?: unknown): MeshError {
  return new MeshError('MESH_E_CSR_INVALID', `certificate signing request is invalid: ${reason}`, { details: { reason }, cause });
}

/** Parses and verifies a DER CSR; only P-256 ECDSA and Ed25519 keys are accepted. */
export function parseCsr(der: Uint8Array): ParsedCsr {
  let parts: CsrParts;
  try {
    parts = readCsr(Buffer.from(der));
  } catch (err) {
    throw invalid(err instanceof DerError ? err.message : 'not a DER PKCS#10 request', err);
  }
  const { publicKey, keyType, spki } = publicKeyFromSpki(parts.spki);
  const expected = keyType === 'ed25519' ? OID.ed25519 : OID.ecdsaWithSha256;
  if (parts.algorithm !== expected) throw invalid(`signature algorithm ${parts.algorithm} does not match the ${keyType} key`);
  if (parts.algorithmParameters) throw invalid('signatureAlgorithm: parameters must be absent');
  const ok =
    keyType === 'ed25519'
      ? verify(null, parts.info, publicKey, parts.signature)
      : verify('sha256', parts.info, { key: publicKey, dsaEncoding: 'der' }, parts.signature);
  if (!ok) throw invalid('its signature does not verify (the requester does not hold the key)');
  return { publicKey, keyType, spki };
}
