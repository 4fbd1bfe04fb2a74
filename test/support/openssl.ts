/**
 * The openssl CLI as an independent maker of keys, certificates and requests,
 * for tests that must not trust our own certificate code to build their
 * inputs. Certificates and requests come from a config file written next to
 * them, so the extensions are exactly the lines a test gives (nothing from the
 * system's openssl.cnf). Files land in the folder given: <name>.key,
 * <name>.cnf, <name>.csr and <name>.pem.
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { type RunResult, run, runChecked } from '../../lib/exec.js';

const TIMEOUT_MS = 60_000;

export type KeyKind = 'P-256' | 'P-384' | 'ed25519' | 'rsa';

export interface OpensslOptions {
  cwd?: string;
  input?: string;
}

/** openssl with these arguments; resolves with the exit code and output, whatever they are. */
export function opensslRun(args: readonly string[], options: OpensslOptions = {}): Promise<RunResult> {
  return run('openssl', args, { ...options, timeoutMs: TIMEOUT_MS });
}

/** openssl with these arguments; resolves with its stdout, and a non-zero exit throws with its stderr. */
export async function openssl(args: readonly string[], options: OpensslOptions = {}): Promise<string> {
  return (await runChecked('openssl', args, 'MESH_E_INTERNAL', { ...options, timeoutMs: TIMEOUT_MS })).stdout;
}

const KEY_ARGS: Record<KeyKind, string[]> = {
  'P-256': ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'],
  'P-384': ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-384'],
  ed25519: ['-algorithm', 'ED25519'],
  rsa: ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048'],
};

/** A new private key, <dir>/<name>.key (PEM); returns its path. */
export async function opensslKey(dir: string, name: string, kind: KeyKind = 'P-256'): Promise<string> {
  const file = path.join(dir, `${name}.key`);
  await openssl(['genpkey', ...KEY_ARGS[kind], '-out', file]);
  return file;
}

export interface RequestSpec {
  /** As `openssl -subj` writes it, e.g. `/O=Operator/CN=root`; default `/CN=<name>`. */
  subject?: string;
  /** The lines of the [ext] section, e.g. `basicConstraints = critical,CA:true`. */
  ext: readonly string[];
  /** More sections the [ext] lines refer to, e.g. `{ alt: [...] }` for `subjectAltName = @alt`. */
  sections?: Readonly<Record<string, readonly string[]>>;
  /** A new key of this kind (default P-256), or a key file made before. */
  key?: KeyKind | { file: string };
}

export interface CertSpec extends RequestSpec {
  /** Validity in days; default 30. */
  days?: number;
}

export interface OpensslCert {
  /** The paths of <name>.pem and its key. */
  readonly cert: string;
  readonly key: string;
  /** The certificate, PEM. */
  readonly pem: string;
}

/** <dir>/<name>.cnf: the subject in [dn], the extensions in [ext], then the other sections. */
async function writeConfig(dir: string, name: string, spec: RequestSpec): Promise<string> {
  const subject = (spec.subject ?? `/CN=${name}`)
    .split('/')
    .filter((part) => part !== '')
    .map((part) => `${part.slice(0, part.indexOf('='))} = ${part.slice(part.indexOf('=') + 1)}`);
  const lines = ['[req]', 'distinguished_name = dn', 'prompt = no', '[dn]', ...subject, '[ext]', ...spec.ext];
  for (const [section, body] of Object.entries(spec.sections ?? {})) lines.push(`[${section}]`, ...body);
  const file = path.join(dir, `${name}.cnf`);
  await writeFile(file, `${lines.join('\n')}\n`);
  return file;
}

const keyOf = (dir: string, name: string, spec: RequestSpec): Promise<string> =>
  typeof spec.key === 'object' ? Promise.resolve(spec.key.file) : opensslKey(dir, name, spec.key);

/** `-extensions ext` only when there are any: an empty section is an openssl error. */
const extensions = (spec: RequestSpec, flag: string): string[] => (spec.ext.length > 0 ? [flag, 'ext'] : []);

/** A self-signed certificate <dir>/<name>.pem with exactly the extensions given. */
export async function selfSignedCert(dir: string, name: string, spec: CertSpec): Promise<OpensslCert> {
  const key = await keyOf(dir, name, spec);
  const config = await writeConfig(dir, name, spec);
  const cert = path.join(dir, `${name}.pem`);
  await openssl(
    ['req', '-x509', '-new', '-key', key, '-config', config, ...extensions(spec, '-extensions')].concat([
      '-days',
      String(spec.days ?? 30),
      '-out',
      cert,
    ]),
  );
  return { cert, key, pem: await readFile(cert, 'utf8') };
}

/** A certificate <dir>/<name>.pem for a request of its key, signed by `issuer`, with the serial given (`-set_serial`). */
export async function issuedCert(
  dir: string,
  name: string,
  issuer: Pick<OpensslCert, 'cert' | 'key'>,
  spec: CertSpec & { serial: string },
): Promise<OpensslCert> {
  const key = await keyOf(dir, name, spec);
  const config = await writeConfig(dir, name, spec);
  const csr = path.join(dir, `${name}.csr`);
  const cert = path.join(dir, `${name}.pem`);
  await openssl(['req', '-new', '-key', key, '-config', config, '-out', csr]);
  await openssl(
    ['x509', '-req', '-in', csr, '-CA', issuer.cert, '-CAkey', issuer.key, '-set_serial', spec.serial].concat([
      '-days',
      String(spec.days ?? 30),
      '-extfile',
      config,
      ...extensions(spec, '-extensions'),
      '-out',
      cert,
    ]),
  );
  return { cert, key, pem: await readFile(cert, 'utf8') };
}

/**
 * A certificate request <dir>/<name>.csr (DER) for a new key, with the
 * extensions given. Resolves with openssl's result (check `code`) and the
 * paths; the request is openssl's whatever it asks for (a forged SAN, CA:true).
 */
export async function opensslCsr(dir: string, name: string, spec: RequestSpec): Promise<RunResult & { csr: string; key: string }> {
  const key = await keyOf(dir, name, spec);
  const config = await writeConfig(dir, name, spec);
  const csr = path.join(dir, `${name}.csr`);
  const result = await opensslRun([
    'req',
    '-new',
    '-key',
    key,
    '-config',
    config,
    ...extensions(spec, '-reqexts'),
    '-outform',
    'DER',
    '-out',
    csr,
  ]);
  return { ...result, csr, key };
}
