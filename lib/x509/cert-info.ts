/**
 * Reading certificates: Node's X509Certificate for most fields, plus the raw
 * subject Name and key identifiers, which the issuing code copies verbatim.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { MeshError } from '../errors.js';
import { children, expectTag, read, Tag } from './der.js';
import { fromPemAll } from './pem.js';

export interface CertFields {
  /** DER of the subject Name. */
  subject: Buffer;
  /** DER of the SubjectPublicKeyInfo. */
  spki: Buffer;
}

export function certFields(der: Buffer): CertFields {
  const [tbs] = children(expectTag(read(der), Tag.SEQUENCE, 'certificate'));
  const fields = children(expectTag(tbs, Tag.SEQUENCE, 'tbsCertificate'));
  // [0] version is present in v3 certificates; skip it when there.
  const body = fields[0]?.tag === 0xa0 ? fields.slice(1) : fields;
  const [, , , , subject, spki] = body;
  return { subject: expectTag(subject, Tag.SEQUENCE, 'subject').raw, spki: expectTag(spki, Tag.SEQUENCE, 'subjectPublicKeyInfo').raw };
}

/** The key identifier RFC 5280 method 1 gives: SHA-1 of the subjectPublicKey bits. */
export function keyIdentifier(spki: Buffer): Buffer {
  const [, keyBits] = children(read(spki));
  return createHash('sha1')
    .update(expectTag(keyBits, Tag.BIT_STRING, 'subjectPublicKey').content.subarray(1))
    .digest();
}

/** The URI SANs of a certificate (Node prints them as `URI:<uri>`). */
export function uriSans(cert: X509Certificate): string[] {
  return (cert.subjectAltName ?? '')
    .split(/,\s*/)
    .filter((entry) => entry.startsWith('URI:'))
    .map((entry) => entry.slice(4));
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
