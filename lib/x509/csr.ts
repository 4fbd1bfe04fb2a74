/**
 * PKCS#10 certificate signing requests. The agent creates them (the key never
 * leaves the host); the control plane parses them, checks the key type and
 * the self-signature, and takes nothing but the public key from them.
 */
import { createPublicKey, type KeyObject, sign, verify } from 'node:crypto';
import { MeshError } from '../errors.js';
import { bits, children, ctx, DerError, decodeOid, expectTag, oid, read, seq, set, smallInt, Tag, utf8 } from './der.js';
import { OID } from './oids.js';

export type KeyType = 'ec-p256' | 'ed25519';

export interface ParsedCsr {
  publicKey: KeyObject;
  keyType: KeyType;
  /** SubjectPublicKeyInfo DER, copied into the certificate. */
  spki: Buffer;
}

export function keyTypeOf(key: KeyObject): KeyType | undefined {
  if (key.asymmetricKeyType === 'ed25519') return 'ed25519';
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ec-p256';
  return undefined;
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

/** A minimal CSR: empty subject, no attributes; the control plane decides everything else. */
export function createCsr(privateKey: KeyObject, publicKey: KeyObject, commonName?: string): Buffer {
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const subject = commonName === undefined ? seq() : seq(set(seq(oid(OID.commonName), utf8(commonName))));
  const info = seq(smallInt(0), subject, spki, ctx(0, Buffer.alloc(0)));
  return seq(info, signatureAlgorithmFor(privateKey), bits(signWith(privateKey, info)));
}

/** DER prefixes of the two accepted SubjectPublicKeyInfo forms (P-256 uncompressed point, Ed25519). */
const P256_SPKI_PREFIX = Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex');
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/**
 * The key of a SubjectPublicKeyInfo and its type. The two accepted forms are
 * recognised by their exact DER prefix and imported as JWK: OpenSSL 3's DER
 * decoder costs about 145 µs per P-256 key (a fifth of an issuance) and the
 * JWK import 75 µs, with the same on-curve check. Anything else goes through
 * the DER decoder, which names what it found.
 */
export function publicKeyFromSpki(spki: Buffer): { publicKey: KeyObject; keyType: KeyType | undefined } {
  if (spki.length === 91 && spki[26] === 0x04 && spki.subarray(0, 26).equals(P256_SPKI_PREFIX)) {
    const x = spki.subarray(27, 59).toString('base64url');
    const y = spki.subarray(59, 91).toString('base64url');
    return { publicKey: createPublicKey({ key: { kty: 'EC', crv: 'P-256', x, y }, format: 'jwk' }), keyType: 'ec-p256' };
  }
  if (spki.length === 44 && spki.subarray(0, 12).equals(ED25519_SPKI_PREFIX)) {
    const x = spki.subarray(12).toString('base64url');
    return { publicKey: createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' }), keyType: 'ed25519' };
  }
  const publicKey = createPublicKey({ key: spki, format: 'der', type: 'spki' });
  return { publicKey, keyType: keyTypeOf(publicKey) };
}

function invalid(reason: string, cause?: unknown): MeshError {
  return new MeshError('MESH_E_CSR_INVALID', `certificate signing request is invalid: ${reason}`, { details: { reason }, cause });
}

/** Parses and verifies a DER CSR; only P-256 ECDSA and Ed25519 keys are accepted. */
export function parseCsr(der: Uint8Array): ParsedCsr {
  let info: Buffer;
  let spki: Buffer;
  let algorithm: string;
  let signature: Buffer;
  try {
    const buf = Buffer.from(der);
    const outer = read(buf);
    if (outer.end !== buf.length) throw new DerError('trailing bytes after the CSR');
    const [infoNode, algNode, sigNode] = children(expectTag(outer, Tag.SEQUENCE, 'CSR'));
    info = expectTag(infoNode, Tag.SEQUENCE, 'CertificationRequestInfo').raw;
    const [, , spkiNode] = children(infoNode as NonNullable<typeof infoNode>);
    spki = expectTag(spkiNode, Tag.SEQUENCE, 'SubjectPublicKeyInfo').raw;
    const [algOid] = children(expectTag(algNode, Tag.SEQUENCE, 'signatureAlgorithm'));
    algorithm = decodeOid(expectTag(algOid, Tag.OID, 'signature algorithm'));
    const sigBits = expectTag(sigNode, Tag.BIT_STRING, 'signature').content;
    signature = sigBits.subarray(1);
  } catch (err) {
    throw invalid(err instanceof DerError ? err.message : 'not a DER PKCS#10 request', err);
  }
  let publicKey: KeyObject;
  let keyType: KeyType | undefined;
  try {
    ({ publicKey, keyType } = publicKeyFromSpki(spki));
  } catch (err) {
    throw invalid('the public key cannot be read', err);
  }
  if (keyType === undefined) {
    const curve = publicKey.asymmetricKeyDetails?.namedCurve;
    throw new MeshError(
      'MESH_E_KEY_UNSUPPORTED',
      `key type ${publicKey.asymmetricKeyType}${curve ? ` (${curve})` : ''} is not accepted; use ECDSA P-256 or Ed25519`,
      { details: { keyType: publicKey.asymmetricKeyType, curve } },
    );
  }
  const expected = keyType === 'ed25519' ? OID.ed25519 : OID.ecdsaWithSha256;
  if (algorithm !== expected) throw invalid(`signature algorithm ${algorithm} does not match the ${keyType} key`);
  const ok =
    keyType === 'ed25519'
      ? verify(null, info, publicKey, signature)
      : verify('sha256', info, { key: publicKey, dsaEncoding: 'der' }, signature);
  if (!ok) throw invalid('its signature does not verify (the requester does not hold the key)');
  return { publicKey, keyType, spki };
}
