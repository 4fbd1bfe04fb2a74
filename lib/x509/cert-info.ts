/**
 * Reading certificates: Node's X509Certificate for most fields, plus what the
 * issuing code copies verbatim (the raw subject Name, the subject key
 * identifier) and the URI SANs, all read from the certificate's DER with the
 * strict reader in der.ts, never from Node's text rendering.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { MeshError } from '../errors.js';
import { children, DerError, decodeOid, expectTag, type Node, readOne, Tag } from './der.js';
import { OID } from './oids.js';
import { fromPemAll } from './pem.js';

export interface Extension {
  critical: boolean;
  /** The content of extnValue (the extension's own DER). */
  value: Buffer;
}

export interface CertFields {
  /** DER of the subject Name. */
  subject: Buffer;
  /** DER of the SubjectPublicKeyInfo. */
  spki: Buffer;
  /** Extensions by OID (a certificate with the same extension twice is refused). */
  extensions: ReadonlyMap<string, Extension>;
}

function certificateError(reason: string, cause?: unknown): MeshError {
  return new MeshError('MESH_E_CERT_INVALID', `the certificate is malformed: ${reason}`, { details: { reason }, cause });
}

function readExtensions(node: Node | undefined): Map<string, Extension> {
  const out = new Map<string, Extension>();
  if (node === undefined) return out;
  const [list, extra] = children(node);
  if (extra !== undefined) throw new DerError('extensions: more than one value in [3]');
  for (const ext of children(expectTag(list, Tag.SEQUENCE, 'extensions'))) {
    const parts = children(expectTag(ext, Tag.SEQUENCE, 'extension'));
    if (parts.length < 2 || parts.length > 3) throw new DerError('extension: expected 2 or 3 fields');
    const id = decodeOid(expectTag(parts[0], Tag.OID, 'extension id'));
    const critical = parts.length === 3 && expectTag(parts[1], Tag.BOOLEAN, 'extension critical').content[0] === 0xff;
    const value = expectTag(parts[parts.length - 1], Tag.OCTET_STRING, 'extension value').content;
    if (out.has(id)) throw new DerError(`extension ${id} appears twice`);
    out.set(id, { critical, value });
  }
  return out;
}

export function certFields(der: Buffer): CertFields {
  try {
    const [tbs] = children(expectTag(readOne(der, 'certificate'), Tag.SEQUENCE, 'certificate'));
    const fields = children(expectTag(tbs, Tag.SEQUENCE, 'tbsCertificate'));
    // [0] version is present in v3 certificates; skip it when there.
    const body = fields[0]?.tag === 0xa0 ? fields.slice(1) : fields;
    const [, , , , subject, spki, ...optional] = body;
    return {
      subject: expectTag(subject, Tag.SEQUENCE, 'subject').raw,
      spki: expectTag(spki, Tag.SEQUENCE, 'subjectPublicKeyInfo').raw,
      extensions: readExtensions(optional.find((n) => n.tag === 0xa3)),
    };
  } catch (err) {
    throw err instanceof DerError ? certificateError(err.message, err) : err;
  }
}

/** The key identifier RFC 5280 method 1 gives: SHA-1 of the subjectPublicKey bits. */
export function keyIdentifier(spki: Buffer): Buffer {
  const [, keyBits] = children(readOne(spki, 'subjectPublicKeyInfo'));
  return createHash('sha1')
    .update(expectTag(keyBits, Tag.BIT_STRING, 'subjectPublicKey').content.subarray(1))
    .digest();
}

/** The subject key identifier exactly as the certificate carries it; undefined when it has none. */
export function subjectKeyIdentifier(der: Buffer): Buffer | undefined {
  const ext = certFields(der).extensions.get(OID.subjectKeyIdentifier);
  if (ext === undefined) return undefined;
  try {
    const id = expectTag(readOne(ext.value, 'subjectKeyIdentifier'), Tag.OCTET_STRING, 'subjectKeyIdentifier').content;
    if (id.length === 0) throw new DerError('subjectKeyIdentifier is empty');
    return Buffer.from(id);
  } catch (err) {
    throw err instanceof DerError ? certificateError(err.message, err) : err;
  }
}

/** GeneralName tags: [6] uniformResourceIdentifier is an IMPLICIT IA5String, so primitive. */
const URI_NAME = 0x86;
const URI_NAME_CONSTRUCTED = 0xa6;

/** The uniformResourceIdentifier entries of a GeneralNames value (DER), in order. */
export function uriNames(generalNames: Buffer): string[] {
  const uris: string[] = [];
  for (const name of children(expectTag(readOne(generalNames, 'subjectAltName'), Tag.SEQUENCE, 'GeneralNames'))) {
    if ((name.tag & 0xc0) !== 0x80) throw new DerError(`subjectAltName: 0x${name.tag.toString(16)} is not a GeneralName`);
    if (name.tag === URI_NAME_CONSTRUCTED) throw new DerError('subjectAltName: a URI in constructed form');
    if (name.tag !== URI_NAME) continue;
    if (name.content.some((b) => b > 0x7f)) throw new DerError('subjectAltName: a URI that is not IA5 (ASCII)');
    uris.push(name.content.toString('latin1'));
  }
  return uris;
}

/** The URI SANs of a certificate, read from the subjectAltName extension's DER. */
export function uriSans(cert: X509Certificate | Buffer): string[] {
  const der = cert instanceof X509Certificate ? cert.raw : cert;
  const ext = certFields(der).extensions.get(OID.subjectAltName);
  if (ext === undefined) return [];
  try {
    return uriNames(ext.value);
  } catch (err) {
    throw err instanceof DerError ? certificateError(err.message, err) : err;
  }
}

export function parseCertificates(pem: string, what: string): X509Certificate[] {
  const ders = fromPemAll(pem);
  if (ders.length === 0) throw new MeshError('MESH_E_CERT_INVALID', `${what} holds no certificate`);
  return ders.map((der, i) => {
    try {
      return new X509Certificate(der);
    } catch (err) {
      throw new MeshError('MESH_E_CERT_INVALID', `${what}: certificate ${i + 1} cannot be parsed: ${(err as Error).message}`, {
        cause: err,
      });
    }
  });
}
