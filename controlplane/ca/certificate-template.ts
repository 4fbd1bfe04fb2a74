/**
 * Pure certificate templates: the TBSCertificate of an X.509-SVID leaf and of
 * the signing CAs, and the final assembly. Everything in a leaf comes from the
 * control plane's decision (SPIFFE ID, validity, usages); from the CSR only
 * the public key is used.
 */

import { keyIdentifier } from '../../lib/x509/cert-info.js';
import { bits, bool, ctx, octets, oid, seq, set, smallInt, time, tlv, uint, utf8 } from '../../lib/x509/der.js';
import { OID } from '../../lib/x509/oids.js';

export interface LeafTemplate {
  serial: Buffer;
  /** DER Name of the issuing CA (its subject). */
  issuer: Buffer;
  /** Subject key identifier of the issuing CA. */
  issuerKeyId: Buffer;
  notBefore: Date;
  notAfter: Date;
  /** SubjectPublicKeyInfo of the requester's key. */
  spki: Buffer;
  spiffeId: string;
}

export interface CaTemplate {
  serial: Buffer;
  issuer: Buffer;
  /** Absent for a self-signed root. */
  issuerKeyId?: Buffer;
  subject: Buffer;
  notBefore: Date;
  notAfter: Date;
  spki: Buffer;
  /** spiffe://<trust-domain>: a signing certificate's SPIFFE ID has no path. */
  trustDomainId: string;
  /** Intermediates get 0: they sign leaves only. */
  pathLen?: number;
}

const extension = (id: string, critical: boolean, value: Buffer) =>
  critical ? seq(oid(id), bool(true), octets(value)) : seq(oid(id), octets(value));

/** keyUsage bits: digitalSignature = bit 0; keyCertSign = bit 5, cRLSign = bit 6. */
const KU_DIGITAL_SIGNATURE = Buffer.from([0x03, 0x02, 0x07, 0x80]);
const KU_CERT_SIGN_CRL_SIGN = Buffer.from([0x03, 0x02, 0x01, 0x06]);

export function distinguishedName(commonName: string, organization?: string): Buffer {
  const rdns = [];
  if (organization !== undefined) rdns.push(set(seq(oid(OID.organization), utf8(organization))));
  rdns.push(set(seq(oid(OID.commonName), utf8(commonName))));
  return seq(...rdns);
}

const SVID_SUBJECT = seq(set(seq(oid(OID.organization), utf8('SPIFFE'))));

/** GeneralNames with one uniformResourceIdentifier ([6] IMPLICIT IA5String). */
function uriSan(uri: string): Buffer {
  return seq(tlv(0x86, Buffer.from(uri, 'ascii')));
}

export function buildLeafTbs(t: LeafTemplate, signatureAlgorithm: Buffer): Buffer {
  const extensions = seq(
    extension(OID.basicConstraints, true, seq()),
    extension(OID.keyUsage, true, KU_DIGITAL_SIGNATURE),
    extension(OID.extKeyUsage, false, seq(oid(OID.serverAuth), oid(OID.clientAuth))),
    extension(OID.subjectAltName, false, uriSan(t.spiffeId)),
    extension(OID.subjectKeyIdentifier, false, octets(keyIdentifier(t.spki))),
    extension(OID.authorityKeyIdentifier, false, seq(ctx(0, t.issuerKeyId, false))),
  );
  return seq(
    ctx(0, smallInt(2)),
    uint(t.serial),
    signatureAlgorithm,
    t.issuer,
    seq(time(t.notBefore), time(t.notAfter)),
    SVID_SUBJECT,
    t.spki,
    ctx(3, extensions),
  );
}

export function buildCaTbs(t: CaTemplate, signatureAlgorithm: Buffer): Buffer {
  const constraints = t.pathLen === undefined ? seq(bool(true)) : seq(bool(true), smallInt(t.pathLen));
  const ext = [
    extension(OID.basicConstraints, true, constraints),
    extension(OID.keyUsage, true, KU_CERT_SIGN_CRL_SIGN),
    extension(OID.subjectAltName, false, uriSan(t.trustDomainId)),
    extension(OID.subjectKeyIdentifier, false, octets(keyIdentifier(t.spki))),
  ];
  if (t.issuerKeyId !== undefined) ext.push(extension(OID.authorityKeyIdentifier, false, seq(ctx(0, t.issuerKeyId, false))));
  return seq(
    ctx(0, smallInt(2)),
    uint(t.serial),
    signatureAlgorithm,
    t.issuer,
    seq(time(t.notBefore), time(t.notAfter)),
    t.subject,
    t.spki,
    ctx(3, seq(...ext)),
  );
}

export function assembleCertificate(tbs: Buffer, signatureAlgorithm: Buffer, signature: Buffer): Buffer {
  return seq(tbs, signatureAlgorithm, bits(signature));
}
