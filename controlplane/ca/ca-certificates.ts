/**
 * The CA's own certificates, made with @peculiar/x509 (off the signing hot
 * path: once per generation): a self-signed root, and a signing CA under a
 * root (ours, or an operator's imported one). Both carry the trust domain's
 * SPIFFE ID (spiffe://<td>, no path), a subject key identifier (RFC 5280
 * method 1) and, under an issuer, an authority key identifier that is the
 * issuer's subject key identifier exactly as its certificate has it.
 */
import { type KeyObject, X509Certificate } from 'node:crypto';
import { certFields, keyIdentifier } from '../../lib/x509/cert-info.js';
import { derOf, webSigner, x509 } from '../../lib/x509/peculiar.js';
import { toPem } from '../../lib/x509/pem.js';
import { BACKDATE_MS, issuerKeyIdOf, newSerial } from './authority.js';

export interface KeyPair {
  privateKey: KeyObject;
  publicKey: KeyObject;
}

interface CaCertificate {
  subject: x509.JsonName;
  /** The issuer's subject Name DER and key identifier as its certificate has them; absent for a self-signed root. */
  issuer?: { name: Buffer; keyId: Buffer };
  /** The key that signs: the issuer's, or the root's own. */
  signingKey: KeyObject;
  publicKey: KeyObject;
  notBefore: number;
  notAfter: number;
  trustDomain: string;
  /** Signing CAs get 0: they sign leaves only. */
  pathLen?: number;
}

const caName = (commonName: string, trustDomain: string): x509.JsonName => [{ '2.5.4.10': [trustDomain] }, { '2.5.4.3': [commonName] }];

async function makeCaCertificate(c: CaCertificate): Promise<Buffer> {
  const signer = await webSigner(c.signingKey);
  const spki = c.publicKey.export({ type: 'spki', format: 'der' });
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(true, c.pathLen, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `spiffe://${c.trustDomain}` }], false),
    new x509.SubjectKeyIdentifierExtension(keyIdentifier(spki).toString('hex'), false),
  ];
  if (c.issuer !== undefined) extensions.push(new x509.AuthorityKeyIdentifierExtension(c.issuer.keyId.toString('hex'), false));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: newSerial().hex,
    subject: c.subject,
    issuer: c.issuer === undefined ? c.subject : new x509.Name(c.issuer.name),
    notBefore: new Date(c.notBefore),
    notAfter: new Date(c.notAfter),
    publicKey: spki,
    signingKey: signer.privateKey,
    signingAlgorithm: signer.signingAlgorithm,
    extensions,
  });
  return derOf(cert);
}

export function createRoot(trustDomain: string, label: string, now: number, key: KeyPair, ttlMs: number): Promise<Buffer> {
  return makeCaCertificate({
    subject: caName(`${trustDomain} root CA ${label}`, trustDomain),
    signingKey: key.privateKey,
    publicKey: key.publicKey,
    notBefore: now - BACKDATE_MS,
    notAfter: now + ttlMs,
    trustDomain,
  });
}

/** A signing CA (pathLen 0) under `issuer`, never outliving it. */
export function createIntermediate(
  trustDomain: string,
  label: string,
  now: number,
  issuer: X509Certificate,
  issuerKey: KeyObject,
  publicKey: KeyObject,
  ttlMs: number,
): Promise<Buffer> {
  return createSubordinateCa({ trustDomain, commonName: `${trustDomain} signing CA ${label}`, now, ttlMs, issuer, issuerKey, publicKey });
}

/**
 * A CA (pathLen 0: it signs leaves only) under `issuer`, never outliving it:
 * our signing CAs, and the intermediates exported for another CA (Istio's
 * plug-in CA), which thereby have the same profile: CA:true critical,
 * keyCertSign and cRLSign critical, URI SAN spiffe://<td>, SKI, AKI of the root.
 */
export function createSubordinateCa(options: {
  trustDomain: string;
  commonName: string;
  now: number;
  ttlMs: number;
  issuer: X509Certificate;
  issuerKey: KeyObject;
  publicKey: KeyObject;
}): Promise<Buffer> {
  const { trustDomain, issuer, now } = options;
  return makeCaCertificate({
    subject: caName(options.commonName, trustDomain),
    issuer: { name: certFields(issuer.raw).subject, keyId: issuerKeyIdOf(issuer) },
    signingKey: options.issuerKey,
    publicKey: options.publicKey,
    notBefore: now - BACKDATE_MS,
    notAfter: Math.min(now + options.ttlMs, Date.parse(issuer.validTo)),
    trustDomain,
    pathLen: 0,
  });
}

export interface NewCa {
  rootPem: string;
  signerPem: string;
}

/** A self-signed root and a signing CA under it, both with the trust domain's SPIFFE ID. */
export async function createCaPair(options: {
  trustDomain: string;
  label: string;
  now: number;
  rootKey: KeyPair;
  signerKey: KeyPair;
  rootTtlMs: number;
  signerTtlMs: number;
}): Promise<NewCa> {
  const { trustDomain, label, now } = options;
  const rootPem = toPem(await createRoot(trustDomain, label, now, options.rootKey, options.rootTtlMs));
  const root = new X509Certificate(rootPem);
  const signer = await createIntermediate(
    trustDomain,
    label,
    now,
    root,
    options.rootKey.privateKey,
    options.signerKey.publicKey,
    options.signerTtlMs,
  );
  return { rootPem, signerPem: toPem(signer) };
}
