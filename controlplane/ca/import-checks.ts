/**
 * What `meshctl ca import` requires of every CA certificate on the imported
 * path (the imported certificate, then its issuers up to the root): a CA
 * (basicConstraints cA true), allowed to sign certificates (keyUsage with
 * keyCertSign), with room under its pathLenConstraint for the CAs below it,
 * and valid now. Pure: the certificates are read from their DER with the
 * strict reader; a failure names the certificate (its place on the path, its
 * subject) and why, with MESH_E_CA_IMPORT_INVALID.
 */
import type { X509Certificate } from 'node:crypto';
import { MeshError } from '../../lib/errors.js';
import { certFields } from '../../lib/x509/cert-info.js';
import { children, DerError, expectTag, readOne, Tag } from '../../lib/x509/der.js';
import { OID } from '../../lib/x509/oids.js';

export interface PathCertificate {
  cert: X509Certificate;
  /** Where the operator gave it: 'the imported certificate', '--chain certificate 2'. */
  given: string;
}

export interface CaConstraints {
  ca: boolean;
  /** pathLenConstraint; undefined when absent (no limit). */
  pathLen: number | undefined;
  /** Whether keyUsage has keyCertSign; undefined when the certificate has no keyUsage extension. */
  keyCertSign: boolean | undefined;
}

/** keyCertSign is bit 5 of KeyUsage: in DER's first value byte, 0x80 is bit 0. */
const KEY_CERT_SIGN = 0x80 >> 5;

function basicConstraints(value: Buffer | undefined): { ca: boolean; pathLen: number | undefined } {
  if (value === undefined) return { ca: false, pathLen: undefined };
  const fields = children(expectTag(readOne(value, 'basicConstraints'), Tag.SEQUENCE, 'basicConstraints'));
  let ca = false;
  let next = fields[0];
  if (next?.tag === Tag.BOOLEAN) {
    ca = next.content[0] === 0xff;
    next = fields[1];
  }
  if (next === undefined) return { ca, pathLen: undefined };
  const int = expectTag(next, Tag.INTEGER, 'basicConstraints pathLenConstraint').content;
  if (int.length === 0 || int.length > 4 || ((int[0] as number) & 0x80) !== 0) {
    throw new DerError('basicConstraints pathLenConstraint is not a small non-negative integer');
  }
  return { ca, pathLen: int.readUIntBE(0, int.length) };
}

function keyCertSign(value: Buffer | undefined): boolean | undefined {
  if (value === undefined) return undefined;
  const bitString = expectTag(readOne(value, 'keyUsage'), Tag.BIT_STRING, 'keyUsage').content;
  return ((bitString[1] ?? 0) & KEY_CERT_SIGN) !== 0;
}

/** A certificate's CA constraints, as its DER says; MESH_E_CERT_INVALID when the extensions are malformed. */
export function caConstraints(der: Buffer): CaConstraints {
  const { extensions } = certFields(der);
  try {
    return {
      ...basicConstraints(extensions.get(OID.basicConstraints)?.value),
      keyCertSign: keyCertSign(extensions.get(OID.keyUsage)?.value),
    };
  } catch (err) {
    if (!(err instanceof DerError)) throw err;
    throw new MeshError('MESH_E_CERT_INVALID', `the certificate is malformed: ${err.message}`, { cause: err });
  }
}

const oneLine = (name: string) => name.replace(/\n/g, ', ');
const selfIssued = (cert: X509Certificate) => cert.subject === cert.issuer;

/** Why a CA certificate cannot stand at `index` of the path; undefined when it can. */
function problem(c: CaConstraints, cert: X509Certificate, casBelow: number, now: number): string | undefined {
  if (!c.ca) return 'is not a CA (basicConstraints CA:true is required)';
  if (c.keyCertSign === undefined) return 'has no keyUsage extension (keyCertSign is required)';
  if (!c.keyCertSign) return 'has a keyUsage without keyCertSign: it may not sign certificates';
  if (c.pathLen !== undefined && c.pathLen < casBelow) {
    return `allows ${c.pathLen} CA certificate(s) below it (pathLenConstraint) but would have ${casBelow}`;
  }
  if (Date.parse(cert.validFrom) > now) return `is not valid before ${cert.validFrom}`;
  if (Date.parse(cert.validTo) <= now) return `expired on ${cert.validTo}`;
  return undefined;
}

/**
 * Checks the import path in order (0 = the imported certificate, last = the
 * root). `casUnderFirst` is how many CA certificates the mesh puts below the
 * imported one: 1 for an imported root (the signing CA made under it), 0 for an
 * imported intermediate (it signs SVIDs itself).
 */
export function checkImportPath(path: readonly PathCertificate[], now: number, casUnderFirst: number): void {
  let casBelow = casUnderFirst;
  for (const [index, { cert, given }] of path.entries()) {
    const subject = oneLine(cert.subject);
    let reason: string | undefined;
    let cause: unknown;
    try {
      reason = problem(caConstraints(cert.raw), cert, casBelow, now);
    } catch (err) {
      reason = `cannot be read: ${(err as Error).message}`;
      cause = err;
    }
    if (reason !== undefined) {
      throw new MeshError('MESH_E_CA_IMPORT_INVALID', `certificate ${index} of the path (${given}, ${subject}) ${reason}`, {
        details: { index, given, subject, reason },
        cause,
      });
    }
    // RFC 5280 6.1.4 (l): a self-issued certificate does not count against the pathLen of those above it.
    if (!selfIssued(cert)) casBelow += 1;
  }
}
