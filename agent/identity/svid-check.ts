/**
 * Whether a workload SVID found on disk may be served: its folder name is the
 * one its SPIFFE ID maps to, its leaf carries exactly that one URI SAN, every
 * certificate of the chain is valid now, the chain verifies up to a root of
 * the stored trust bundle, and the key goes with the leaf. Pure (the time is
 * an input); the reasons never quote key or certificate material.
 */
import { createHash, createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import { isMeshError } from '../../lib/errors.js';
import { parseSpiffeId } from '../../lib/spiffe-id.js';
import { uriSans } from '../../lib/x509/cert-info.js';
import { fromPemAll } from '../../lib/x509/pem.js';

export interface StoredSvid {
  readonly spiffeId: string;
  readonly chainPem: string;
  readonly keyPem: string;
  readonly serial: string;
  readonly notBefore: number;
  readonly notAfter: number;
}

export type SvidCheck = { ok: true; svid: StoredSvid } | { ok: false; reason: string };

const READABLE = /^[A-Za-z0-9_][A-Za-z0-9._+-]{0,199}$/;

/**
 * The folder name of a workload SVID: its SPIFFE ID without "spiffe://" and
 * with "/" written as "+" (spiffe://example.org/ns/web/sa/api ->
 * example.org+ns+web+sa+api). SPIFFE IDs use no "+", so distinct IDs get
 * distinct names. A name that would be longer than 200 characters or start
 * with "." or "-" is shortened and ends with "+" and 32 hex digits of the ID's
 * SHA-256 instead.
 */
export function workloadDirName(spiffeId: string): string {
  const readable = spiffeId.replace(/^spiffe:\/\//, '').replaceAll('/', '+');
  if (READABLE.test(readable)) return readable;
  const hash = createHash('sha256').update(spiffeId).digest('hex').slice(0, 32);
  const prefix = readable
    .replace(/[^A-Za-z0-9._+-]/g, '_')
    .replace(/^[.-]+/, '')
    .slice(0, 100);
  return `${prefix}+${hash}`;
}

const iso = (ms: number) => new Date(ms).toISOString();

const signedBy = (child: X509Certificate, parent: X509Certificate) => child.checkIssued(parent) && child.verify(parent.publicKey);

function parse(pem: string): X509Certificate[] | undefined {
  try {
    return fromPemAll(pem).map((der) => new X509Certificate(der));
  } catch {
    return undefined;
  }
}

function validityProblem(cert: X509Certificate, what: string, now: number): string | undefined {
  const notBefore = Date.parse(cert.validFrom);
  const notAfter = Date.parse(cert.validTo);
  if (!(notAfter > now)) return `${what} expired at ${iso(notAfter)}`;
  if (!(notBefore <= now)) return `${what} is not valid before ${iso(notBefore)} (check the clock)`;
  return undefined;
}

/** What is wrong with a subjectAltName, as the DER reader says it (a structural reason, never the bytes). */
const sanProblem = (err: unknown): string => {
  const reason = isMeshError(err) ? err.details.reason : undefined;
  return typeof reason === 'string' ? reason : (err as Error).message;
};

export function checkStoredSvid(input: { dirName: string; chainPem: string; keyPem: string; bundlePem: string; now: number }): SvidCheck {
  const fail = (reason: string): SvidCheck => ({ ok: false, reason });
  const chain = parse(input.chainPem);
  const leaf = chain?.[0];
  if (chain === undefined || leaf === undefined) return fail('the certificate file holds no readable certificate');
  const roots = parse(input.bundlePem) ?? [];
  if (roots.length === 0) return fail('the stored trust bundle holds no readable root');
  let key: KeyObject;
  try {
    key = createPrivateKey(input.keyPem);
  } catch {
    return fail('the key file holds no readable private key');
  }

  let sans: string[];
  try {
    sans = uriSans(leaf);
  } catch (err) {
    return fail(`the leaf's subjectAltName cannot be read: ${sanProblem(err)}`);
  }
  const spiffeId = sans[0];
  if (sans.length !== 1 || spiffeId === undefined) return fail(`the leaf carries ${sans.length} URI SANs, not exactly one SPIFFE ID`);
  try {
    parseSpiffeId(spiffeId);
  } catch {
    return fail('the leaf URI SAN is not a valid SPIFFE ID');
  }
  if (workloadDirName(spiffeId) !== input.dirName) return fail(`the leaf is for ${spiffeId}, which is not stored under this folder name`);

  for (const [i, cert] of chain.entries()) {
    const problem = validityProblem(cert, i === 0 ? 'the leaf' : `chain certificate ${i + 1}`, input.now);
    if (problem !== undefined) return fail(problem);
  }
  for (let i = 0; i + 1 < chain.length; i++) {
    if (!signedBy(chain[i] as X509Certificate, chain[i + 1] as X509Certificate))
      return fail(`chain certificate ${i + 1} is not signed by the next one`);
  }
  const top = chain[chain.length - 1] as X509Certificate;
  const root = roots.find((r) => signedBy(top, r));
  if (root === undefined) return fail('the chain does not lead to a root of the stored trust bundle');
  const rootProblem = validityProblem(root, 'its root', input.now);
  if (rootProblem !== undefined) return fail(rootProblem);
  if (!leaf.checkPrivateKey(key)) return fail('the key does not go with the certificate');

  return {
    ok: true,
    svid: {
      spiffeId,
      chainPem: input.chainPem,
      keyPem: input.keyPem,
      serial: leaf.serialNumber,
      notBefore: Date.parse(leaf.validFrom),
      notAfter: Date.parse(leaf.validTo),
    },
  };
}
