/**
 * The agent's certificate signing requests: a minimal PKCS#10 request (RFC
 * 2986; empty subject unless a common name is given, no attributes), written
 * with the DER helpers and signed with node:crypto. The control plane decides
 * everything else and takes only the public key.
 *
 * Not @peculiar/x509: loading it (with asn1js, tsyringe and reflect-metadata)
 * for this one request cost the agent about 2.5 MB of RSS in bench/xds
 * (alternating runs) for the rest of its life. The request it made is the
 * same bytes as this one up to the signature (test/lib/x509/csr.test.ts
 * compares them; openssl and @peculiar/x509 verify ours).
 */
import type { KeyObject } from 'node:crypto';
import { MeshError } from '../errors.js';
import { signatureAlgorithmFor, signWith } from './csr.js';
import { bits, ctx, oid, seq, set, Tag, tlv } from './der.js';
import { OID } from './oids.js';

/** A Name with one CN, as PrintableString when it can be one (what @peculiar/x509 wrote), else UTF8String. */
function subjectName(commonName: string | undefined): Buffer {
  if (commonName === undefined) return seq();
  const printable = /^[A-Za-z0-9 '()+,\-./:=?]*$/.test(commonName);
  const value = tlv(printable ? Tag.PRINTABLE_STRING : Tag.UTF8_STRING, Buffer.from(commonName, 'utf8'));
  return seq(set(seq(oid(OID.commonName), value)));
}

/** DER PKCS#10 request for the key pair; the private key signs it and stays here. */
export function createCsr(privateKey: KeyObject, publicKey: KeyObject, commonName?: string): Buffer {
  if (privateKey.type !== 'private' || publicKey.type !== 'public') {
    throw new MeshError('MESH_E_KEY_UNSUPPORTED', 'a CSR needs a private key and its public key');
  }
  const algorithm = signatureAlgorithmFor(privateKey);
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  // CertificationRequestInfo: version 0, subject, subjectPKInfo, attributes [0] IMPLICIT SET OF (empty).
  const info = seq(tlv(Tag.INTEGER, Buffer.from([0])), subjectName(commonName), spki, ctx(0, Buffer.alloc(0)));
  return seq(info, algorithm, bits(signWith(privateKey, info)));
}
