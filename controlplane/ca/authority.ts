/**
 * One CA generation in memory: its bundle root, its signing CA (an
 * intermediate, or an imported CA), the signing key parsed once, and the pure
 * issuance of leaf SVIDs from the template.
 */
import { type KeyObject, randomBytes, X509Certificate } from 'node:crypto';
import { MeshError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { certFields, keyIdentifier, subjectKeyIdentifier } from '../../lib/x509/cert-info.js';
import { signatureAlgorithmFor, signWith } from '../../lib/x509/csr.js';
import { fromPemAll, toPem } from '../../lib/x509/pem.js';
import type { GenerationRow, GenerationState } from '../store/ca-repo.js';
import { assembleCertificate, buildLeafTbs } from './certificate-template.js';

/**
 * Leaves start a little in the past, for hosts whose clocks run behind: 10 s,
 * or 5% of the TTL for short TTLs, so a short-lived SVID is not mostly spent
 * at issue (renewal is scheduled at half of notBefore..notAfter).
 */
export const BACKDATE_MS = 10_000;

export function backdateFor(ttlMs: number): number {
  return Math.min(BACKDATE_MS, Math.floor(ttlMs * 0.05));
}

/** What signing a leaf needs of a generation; plain data and a KeyObject, so it can be posted to a signing worker. */
export interface SigningKey {
  readonly id: number;
  readonly signerKey: KeyObject;
  readonly signerSubject: Buffer;
  readonly signerKeyId: Buffer;
  readonly signatureAlgorithm: Buffer;
  /** The signer's notAfter (ms): no leaf outlives it. */
  readonly signerNotAfter: number;
}

export interface Generation extends SigningKey {
  readonly id: number;
  readonly state: GenerationState;
  readonly source: 'generated' | 'imported';
  readonly root: X509Certificate;
  readonly rootPem: string;
  readonly signer: X509Certificate;
  readonly signerPem: string;
  /** Certificates between the signer and the root (imported intermediates), PEM. */
  readonly chainPems: readonly string[];
  readonly signerKey: KeyObject;
  readonly signerSubject: Buffer;
  readonly signerKeyId: Buffer;
  readonly signatureAlgorithm: Buffer;
}

export interface IssuedLeaf {
  der: Buffer;
  serial: string;
  notBefore: number;
  notAfter: number;
}

/**
 * The authority key identifier of what a CA issues: its subject key identifier
 * exactly as its certificate carries it (an imported CA's may be anything:
 * Go writes a truncated SHA-256, openssl can be given any value), never one
 * recomputed from its key. A CA certificate without one is refused at import.
 */
export function issuerKeyIdOf(issuer: X509Certificate): Buffer {
  const id = subjectKeyIdentifier(issuer.raw);
  if (id === undefined) {
    throw new MeshError('MESH_E_CERT_INVALID', `the CA certificate ${oneLine(issuer.subject)} has no subjectKeyIdentifier extension`);
  }
  return id;
}

const oneLine = (name: string) => name.replace(/\n/g, ', ');

/**
 * The key id a stored signing CA's leaves carry. A generation imported before
 * SKIs were required may have none: its leaves then name the RFC 5280
 * method-1 key id (SHA-1 of the public key bits), as the code of that time
 * did, and the operator is told to rotate to a CA that has one.
 */
function storedSignerKeyId(row: GenerationRow, signer: X509Certificate, spki: Buffer, logger: Logger): Buffer {
  const id = subjectKeyIdentifier(signer.raw);
  if (id !== undefined) return id;
  logger.warn(
    'the signing CA has no subjectKeyIdentifier; its leaves name the SHA-1 of its key as authority key id (rotate to a CA with one)',
    {
      generation: row.id,
      subject: oneLine(signer.subject),
    },
  );
  return keyIdentifier(spki);
}

export function generationFromRow(row: GenerationRow, signerKey: KeyObject, logger: Logger): Generation {
  const root = new X509Certificate(row.root_pem);
  const signer = new X509Certificate(row.signer_pem);
  const fields = certFields(signer.raw);
  return Object.freeze({
    id: row.id,
    state: row.state,
    source: row.source,
    root,
    rootPem: row.root_pem,
    signer,
    signerPem: row.signer_pem,
    chainPems: fromPemAll(row.chain_pem).map((der) => toPem(der)),
    signerKey,
    signerSubject: fields.subject,
    signerKeyId: storedSignerKeyId(row, signer, fields.spki, logger),
    signatureAlgorithm: signatureAlgorithmFor(signerKey),
    signerNotAfter: Date.parse(signer.validTo),
  });
}

/** A random positive serial with 128 bits of entropy; hex as X509Certificate.serialNumber prints it. */
export function newSerial(random: (n: number) => Buffer = randomBytes): { bytes: Buffer; hex: string } {
  const bytes = random(16);
  if (bytes[0] === 0) bytes[0] = 1;
  return { bytes, hex: bytes.toString('hex').toUpperCase() };
}

export interface LeafRequest {
  spiffeId: string;
  spki: Buffer;
  ttlMs: number;
  now: number;
}

export function issueLeaf(gen: SigningKey, req: LeafRequest, random?: (n: number) => Buffer): IssuedLeaf {
  const notAfter = Math.min(req.now + req.ttlMs, gen.signerNotAfter);
  if (notAfter <= req.now) {
    throw new MeshError('MESH_E_CA_EXPIRED', 'the signing CA has expired; rotate the CA (meshctl ca rotate prepare|activate)');
  }
  const serial = newSerial(random);
  const notBefore = Math.floor((req.now - backdateFor(req.ttlMs)) / 1000) * 1000;
  const notAfterSec = Math.floor(notAfter / 1000) * 1000;
  const tbs = buildLeafTbs(
    {
      serial: serial.bytes,
      issuer: gen.signerSubject,
      issuerKeyId: gen.signerKeyId,
      notBefore: new Date(notBefore),
      notAfter: new Date(notAfterSec),
      spki: req.spki,
      spiffeId: req.spiffeId,
    },
    gen.signatureAlgorithm,
  );
  const der = assembleCertificate(tbs, gen.signatureAlgorithm, signWith(gen.signerKey, tbs));
  return { der, serial: serial.hex, notBefore, notAfter: notAfterSec };
}

/** The chain a client receives after its leaf: the signer, then any intermediates up to (not including) the root. */
export function chainAfterLeaf(gen: Generation): string[] {
  return [gen.signerPem, ...gen.chainPems];
}
