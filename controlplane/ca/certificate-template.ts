/**
 * The pure certificate template of the signing hot path: the TBSCertificate
 * of an X.509-SVID leaf, and the final assembly. Everything in a leaf comes
 * from the control plane's decision (SPIFFE ID, validity, usages); from the
 * CSR only the public key, re-encoded from the parsed key. A fixed DER
 * template signed with a KeyObject parsed once is measurably faster than
 * @peculiar/x509 (bench/x509-sign.ts); the CA's own certificates, made once
 * per generation, are made with the library (ca-certificates.ts).
 */

import { keyIdentifier } from '../../lib/x509/cert-info.js';
import { bits, bool, ctx, octets, oid, seq, set, smallInt, time, tlv, uint, utf8 } from '../../lib/x509/der.js';
import { OID } from '../../lib/x509/oids.js';

export interface LeafTemplate {
  serial: Buffer;
  /** DER Name of the issuing CA (its subject). */
  issuer: Buffer;
  /** Subject key identifier of the issuing CA, as its certificate carries it: the leaf's AKI. */
  issuerKeyId: Buffer;
  notBefore: Date;
  notAfter: Date;
  /** SubjectPublicKeyInfo of the requester's key. */
  spki: Buffer;
  spiffeId: string;
}

const extension = (id: string, critical: boolean, value: Buffer) =>
  critical ? seq(oid(id), bool(true), octets(value)) : seq(oid(id), octets(value));

/** keyUsage bits: digitalSignature = bit 0. */
const KU_DIGITAL_SIGNATURE = Buffer.from([0x03, 0x02, 0x07, 0x80]);

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

export function assembleCertificate(tbs: Buffer, signatureAlgorithm: Buffer, signature: Buffer): Buffer {
  return seq(tbs, signatureAlgorithm, bits(signature));
}
