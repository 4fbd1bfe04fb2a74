/**
 * `meshctl cert inspect FILE [--json]`: an offline look at every certificate
 * of a PEM file (an SVID chain, a bundle, a CA to import) with @peculiar/x509:
 * SPIFFE ID, subject, issuer, serial, validity, key identifiers, CA or leaf,
 * and whether the chain links (each certificate issued by the next: issuer
 * name, authority key identifier and signature). Needs no control plane.
 */
import { readFile } from 'node:fs/promises';
import { type CliIo, type Command, EXIT_OK } from '../../lib/cli.js';
import { MeshError } from '../../lib/errors.js';
import { fromPemAll } from '../../lib/x509/pem.js';

type X509 = typeof import('../../lib/x509/peculiar.js')['x509'];
type Cert = InstanceType<X509['X509Certificate']>;

export interface CertSummary {
  index: number;
  spiffeIds: string[];
  subject: string;
  issuer: string;
  serial: string;
  notBefore: string;
  notAfter: string;
  validity: 'valid' | 'expired' | 'not yet valid';
  subjectKeyId: string | null;
  authorityKeyId: string | null;
  ca: boolean;
  pathLength: number | null;
  selfSigned: boolean;
  /** Whether the next certificate of the file issued this one (null for the last). */
  issuedByNext: boolean | null;
  /** Why not, when issuedByNext is false. */
  linkProblem: string | null;
}

export interface InspectReport {
  file: string;
  certificates: CertSummary[];
  chain: { links: boolean; endsAtSelfSigned: boolean };
}

const colons = (hex: string) => hex.toUpperCase().match(/../g)?.join(':') ?? hex;
const iso = (date: Date) => date.toISOString().replace(/\.000Z$/, 'Z');

function invalid(file: string, message: string, cause?: unknown): MeshError {
  return new MeshError('MESH_E_CERT_INVALID', `${file}: ${message}`, { details: { file }, cause });
}

/** Why `child` is not issued by `parent`, or undefined when it is. */
async function linkProblem(x509: X509, child: Cert, parent: Cert): Promise<string | undefined> {
  if (!Buffer.from(child.issuerName.toArrayBuffer()).equals(Buffer.from(parent.subjectName.toArrayBuffer()))) {
    return `its issuer (${child.issuer}) is not the next certificate's subject (${parent.subject})`;
  }
  const aki = child.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId;
  const ski = parent.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
  if (aki !== undefined && ski !== undefined && aki !== ski) {
    return `its authority key identifier ${colons(aki)} is not the next certificate's subject key identifier ${colons(ski)}`;
  }
  const ok = await child.verify({ publicKey: parent.publicKey, signatureOnly: true }).catch(() => false);
  return ok ? undefined : "its signature does not verify with the next certificate's key";
}

/** Everything `cert inspect` prints, from the file's text; `now` decides valid or expired. */
export async function inspectPem(text: string, file: string, now: number): Promise<InspectReport> {
  const { x509 } = await import('../../lib/x509/peculiar.js');
  const ders = fromPemAll(text);
  if (ders.length === 0) throw invalid(file, 'holds no certificate (no -----BEGIN CERTIFICATE----- block)');
  const certs = ders.map((der, i) => {
    try {
      const cert = new x509.X509Certificate(der);
      void cert.extensions; // parse them now: a malformed extension is an error of this file
      return cert;
    } catch (err) {
      throw invalid(file, `certificate ${i + 1} cannot be parsed: ${(err as Error).message}`, err);
    }
  });
  const summaries: CertSummary[] = [];
  for (const [i, cert] of certs.entries()) {
    const next = certs[i + 1];
    const problem = next === undefined ? undefined : await linkProblem(x509, cert, next);
    const constraints = cert.getExtension(x509.BasicConstraintsExtension);
    const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
    const validity = now < cert.notBefore.getTime() ? 'not yet valid' : now > cert.notAfter.getTime() ? 'expired' : 'valid';
    summaries.push({
      index: i + 1,
      spiffeIds: (san?.names.items ?? []).filter((n) => n.type === 'url' && n.value.startsWith('spiffe://')).map((n) => n.value),
      subject: cert.subject,
      issuer: cert.issuer,
      serial: cert.serialNumber.toUpperCase(),
      notBefore: iso(cert.notBefore),
      notAfter: iso(cert.notAfter),
      validity,
      subjectKeyId: cert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId ?? null,
      authorityKeyId: cert.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId ?? null,
      ca: constraints?.ca ?? false,
      pathLength: constraints?.pathLength ?? null,
      selfSigned: await cert.isSelfSigned(),
      issuedByNext: next === undefined ? null : problem === undefined,
      linkProblem: problem ?? null,
    });
  }
  return {
    file,
    certificates: summaries,
    chain: { links: summaries.every((s) => s.issuedByNext !== false), endsAtSelfSigned: summaries.at(-1)?.selfSigned ?? false },
  };
}

export function renderInspect(report: InspectReport): string {
  const n = report.certificates.length;
  const lines = [`${report.file}: ${n} certificate${n === 1 ? '' : 's'}`];
  for (const c of report.certificates) {
    const kind = c.ca
      ? `CA${c.pathLength === null ? '' : ` (pathLen ${c.pathLength})`}${c.selfSigned ? ', self-signed root' : ''}`
      : 'leaf';
    const row = (label: string, value: string) => lines.push(`  ${label.padEnd(11)} ${value}`);
    lines.push('', `[${c.index}] ${kind}`);
    row('SPIFFE ID', c.spiffeIds.join(', ') || '-');
    row('subject', c.subject || '(empty)');
    row('issuer', c.issuer || '(empty)');
    row('serial', c.serial);
    row('not before', c.notBefore);
    row('not after', `${c.notAfter} (${c.validity})`);
    row('SKI', c.subjectKeyId === null ? '-' : colons(c.subjectKeyId));
    row('AKI', c.authorityKeyId === null ? '-' : colons(c.authorityKeyId));
    if (c.issuedByNext !== null) row(`issued by [${c.index + 1}]`, c.issuedByNext ? 'yes' : `NO: ${c.linkProblem}`);
  }
  const end = report.chain.endsAtSelfSigned ? 'ends at a self-signed certificate' : 'ends at an issuer not in the file';
  lines.push(
    '',
    report.chain.links
      ? `chain: links (${n === 1 ? 'one certificate' : 'each certificate is issued by the next'}; ${end})`
      : 'chain: BROKEN (see "issued by" above)',
  );
  return `${lines.join('\n')}\n`;
}

/** The command; `now` is injected for tests (an offline command, it reads the clock only here). */
export function certInspectCommand(now: () => number = Date.now): Command {
  return {
    name: 'cert inspect',
    summary: 'print every certificate of a PEM file: SPIFFE ID, subject, issuer, serial, validity, key ids, chain (offline)',
    usage: 'FILE [--json]\n\nOptions:\n  --json   print the report as JSON\n',
    options: { json: { type: 'boolean' } },
    allowPositionals: true,
    async run({ values, positionals, io }: { values: Record<string, unknown>; positionals: string[]; io: CliIo }) {
      const [file] = positionals;
      if (file === undefined || positionals.length !== 1) throw new MeshError('MESH_E_USAGE', 'cert inspect: give exactly one PEM FILE');
      let text: string;
      try {
        text = await readFile(file, 'utf8');
      } catch (err) {
        throw invalid(file, `cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, err);
      }
      const report = await inspectPem(text, file, now());
      io.stdout.write(values.json ? `${JSON.stringify(report)}\n` : renderInspect(report));
      return EXIT_OK;
    },
  };
}
