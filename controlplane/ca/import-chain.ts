/**
 * The path of an imported CA, built with @peculiar/x509: whether the imported
 * certificate is a self-signed root, and an intermediate's issuers up to and
 * including its root, in path order. CaManager imports this module only when
 * an import runs, so the control plane does not load @peculiar/x509 at start.
 */
import type { X509Certificate } from 'node:crypto';
import { MeshError } from '../../lib/errors.js';
import { parseCertificates } from '../../lib/x509/cert-info.js';
import { x509 } from '../../lib/x509/peculiar.js';
import type { PathCertificate } from './import-checks.js';

const oneLine = (name: string) => name.replace(/\n/g, ', ');

export function isSelfSigned(cert: X509Certificate): Promise<boolean> {
  return new x509.X509Certificate(cert.raw).isSelfSigned();
}

/**
 * The issuers of an imported intermediate, up to and including its
 * self-signed root, in path order, each with its place in the --chain file.
 * X509ChainBuilder finds each issuer among the --chain certificates (subject
 * name, key identifiers, signature), so their order in the file does not
 * matter; every one of them must be on the path, and the path must end at a
 * self-signed root.
 */
export async function issuerPath(cert: X509Certificate, chainPem: string): Promise<PathCertificate[]> {
  const chain = chainPem.trim() === '' ? [] : parseCertificates(chainPem, 'the --chain file');
  const given = chain.map((c) => new x509.X509Certificate(c.raw));
  const roots = await Promise.all(given.map((c) => c.isSelfSigned()));
  if (!roots.includes(true)) {
    throw new MeshError(
      'MESH_E_CA_IMPORT_INVALID',
      'an imported intermediate needs --chain with its issuers up to and including the self-signed root',
    );
  }
  let built: x509.X509Certificate[];
  try {
    built = [...(await new x509.X509ChainBuilder({ certificates: given }).build(new x509.X509Certificate(cert.raw)))];
  } catch (err) {
    throw new MeshError('MESH_E_CA_IMPORT_INVALID', `the chain cannot be built: ${(err as Error).message}`, { cause: err });
  }
  const indexes = built.slice(1).map((b) => given.findIndex((g) => g.equal(b)));
  const unused = chain.filter((_, i) => !indexes.includes(i));
  const end = built.at(-1) as x509.X509Certificate;
  if (!(await end.isSelfSigned())) {
    const next = unused[0]?.subject ?? 'any certificate of --chain';
    throw new MeshError('MESH_E_CA_IMPORT_INVALID', `the chain is broken: ${end.subject} is not issued by ${oneLine(next)}`);
  }
  if (unused.length > 0) {
    throw new MeshError(
      'MESH_E_CA_IMPORT_INVALID',
      `the chain is broken: ${oneLine((unused[0] as X509Certificate).subject)} is not on the path from the imported certificate to its root`,
    );
  }
  return indexes.map((i) => ({ cert: chain[i] as X509Certificate, given: `--chain certificate ${i + 1}` }));
}
