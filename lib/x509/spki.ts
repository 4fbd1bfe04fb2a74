/**
 * The public keys the mesh accepts in a CSR: ECDSA P-256 (named curve,
 * uncompressed point) and Ed25519, each in its one canonical
 * SubjectPublicKeyInfo form. Read from untrusted bytes on the signing hot path.
 */
import { createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { MeshError } from '../errors.js';
import { children, decodeOid, expectTag, readOne, Tag } from './der.js';
import { OID } from './oids.js';

export type KeyType = 'ec-p256' | 'ed25519';

export function keyTypeOf(key: KeyObject): KeyType | undefined {
  if (key.asymmetricKeyType === 'ed25519') return 'ed25519';
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ec-p256';
  return undefined;
}

/** DER prefixes of the two accepted SubjectPublicKeyInfo forms (P-256 named curve with an uncompressed point, Ed25519). */
const P256_SPKI_PREFIX = Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex');
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const UNCOMPRESSED = Buffer.from([0x04]);

export interface SpkiKey {
  publicKey: KeyObject;
  keyType: KeyType;
  /** The SubjectPublicKeyInfo encoded by us from the parsed key (never the input bytes). */
  spki: Buffer;
}

/**
 * The key of a SubjectPublicKeyInfo, its type and its canonical encoding.
 * Only the two canonical forms are accepted; they are recognised by their
 * exact DER prefix and imported as JWK: OpenSSL 3's DER decoder costs about
 * 145 µs per P-256 key (a fifth of an issuance) and the JWK import 75 µs,
 * with the same on-curve check. The certificate gets our own encoding of the
 * parsed point or key (the fixed prefix, then the coordinates), equal to
 * KeyObject.export('spki') at a tenth of its cost. Anything else is refused:
 * a P-256 key with a compressed point or explicit curve parameters, or any
 * other key type, is MESH_E_KEY_UNSUPPORTED naming what was found (the DER
 * decoder names the type); bytes that are no key at all, MESH_E_CSR_INVALID.
 */
export function publicKeyFromSpki(spki: Buffer): SpkiKey {
  if (spki.length === 91 && spki[26] === 0x04 && spki.subarray(0, 26).equals(P256_SPKI_PREFIX)) {
    const x = spki.subarray(27, 59);
    const y = spki.subarray(59, 91);
    const jwk = { kty: 'EC', crv: 'P-256', x: x.toString('base64url'), y: y.toString('base64url') };
    const publicKey = importJwk(jwk);
    return { publicKey, keyType: 'ec-p256', spki: Buffer.concat([P256_SPKI_PREFIX, UNCOMPRESSED, x, y]) };
  }
  if (spki.length === 44 && spki.subarray(0, 12).equals(ED25519_SPKI_PREFIX)) {
    const x = spki.subarray(12);
    const publicKey = importJwk({ kty: 'OKP', crv: 'Ed25519', x: x.toString('base64url') });
    return { publicKey, keyType: 'ed25519', spki: Buffer.concat([ED25519_SPKI_PREFIX, x]) };
  }
  throw refusal(spki);
}

/** The JWK import checks the point is on the curve (or the Ed25519 key is 32 bytes). */
function importJwk(jwk: JsonWebKey): KeyObject {
  try {
    return createPublicKey({ key: jwk, format: 'jwk' });
  } catch (err) {
    throw unreadable(err);
  }
}

function unreadable(cause: unknown): MeshError {
  const reason = 'the public key cannot be read';
  return new MeshError('MESH_E_CSR_INVALID', `certificate signing request is invalid: ${reason}`, { details: { reason }, cause });
}

/** Why a SubjectPublicKeyInfo that is not one of the two canonical forms is refused. */
function refusal(spki: Buffer): MeshError {
  const shape = spkiShape(spki);
  if (shape?.explicitCurve) {
    return unsupported('an EC key with explicit curve parameters is not accepted; use the named curve P-256 (prime256v1)', {
      keyType: 'ec',
      encoding: 'explicit-parameters',
    });
  }
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: spki, format: 'der', type: 'spki' });
  } catch (err) {
    return unreadable(err);
  }
  const keyType = keyTypeOf(publicKey);
  if (keyType === 'ec-p256') {
    const first = shape?.point[0];
    const compressed = first === 0x02 || first === 0x03;
    return unsupported(
      compressed
        ? 'a P-256 key with a compressed point is not accepted; send the uncompressed point (04 || X || Y)'
        : 'the P-256 key is not in the canonical SubjectPublicKeyInfo form (named curve, uncompressed point)',
      { keyType: 'ec', curve: 'prime256v1', encoding: compressed ? 'compressed-point' : 'non-canonical' },
    );
  }
  if (keyType === 'ed25519') {
    return unsupported('the Ed25519 key is not in the canonical SubjectPublicKeyInfo form (RFC 8410)', {
      keyType: 'ed25519',
      encoding: 'non-canonical',
    });
  }
  const curve = publicKey.asymmetricKeyDetails?.namedCurve;
  return unsupported(`key type ${publicKey.asymmetricKeyType}${curve ? ` (${curve})` : ''} is not accepted; use ECDSA P-256 or Ed25519`, {
    keyType: publicKey.asymmetricKeyType,
    curve,
  });
}

/** The algorithm parameters and key bits of a SubjectPublicKeyInfo, when it has that shape at all. */
function spkiShape(spki: Buffer): { explicitCurve: boolean; point: Buffer } | undefined {
  try {
    const [alg, key] = children(expectTag(readOne(spki, 'SubjectPublicKeyInfo'), Tag.SEQUENCE, 'SubjectPublicKeyInfo'));
    const [algOid, params] = children(expectTag(alg, Tag.SEQUENCE, 'algorithm'));
    const ec = decodeOid(expectTag(algOid, Tag.OID, 'algorithm')) === OID.ecPublicKey;
    return {
      explicitCurve: ec && params?.tag === Tag.SEQUENCE,
      point: expectTag(key, Tag.BIT_STRING, 'subjectPublicKey').content.subarray(1),
    };
  } catch {
    return undefined;
  }
}

function unsupported(message: string, details: Record<string, unknown>): MeshError {
  return new MeshError('MESH_E_KEY_UNSUPPORTED', message, { details });
}
