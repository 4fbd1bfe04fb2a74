/**
 * Independent checkers for X.509-SVIDs, for the tests of the certificate
 * authority: go-spiffe's x509svid.ParseAndVerify (through the provisioned
 * test/tools/svid-verify binary) and `openssl verify`. Both take PEM text
 * (the chain leaf first, then intermediates; the bundle: root certificates),
 * work in a temporary folder and remove it afterwards.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { MeshError } from '../../lib/errors.js';
import { run } from '../../lib/exec.js';
import { opensslRun } from './openssl.js';
import { withTempDir } from './temp-dir.js';
import { tools } from './tools.js';

export interface SvidLeaf {
  /** Upper-case hexadecimal, no leading zeros. */
  readonly serial: string;
  /** RFC 3339, UTC. */
  readonly not_before: string;
  readonly not_after: string;
  readonly is_ca: boolean;
  /** digitalSignature, keyEncipherment, keyCertSign, ... */
  readonly key_usage: string[];
  /** serverAuth, clientAuth, ... */
  readonly ext_key_usage: string[];
  readonly uri_sans: string[];
  readonly dns_sans: string[];
}

export type SvidVerifyResult =
  | { readonly ok: true; readonly spiffe_id: string; readonly chains: number; readonly leaf: SvidLeaf }
  | { readonly ok: false; readonly error: string };

export interface OpensslVerifyResult {
  readonly ok: boolean;
  /** openssl's exit code (0: verified). */
  readonly code: number | null;
  readonly output: string;
}

export type OpensslPurpose = 'sslclient' | 'sslserver';

const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** The CERTIFICATE blocks of a PEM text, in order. */
export function splitPemChain(pem: string): string[] {
  return [...pem.matchAll(CERT_BLOCK)].map((m) => `${m[0]}\n`);
}

/** Verifies with go-spiffe; `at` verifies at that time instead of now. */
export async function verifySvid(chainPem: string, bundlePem: string, options: { at?: Date } = {}): Promise<SvidVerifyResult> {
  const binary = (await tools()).svidVerify.path;
  return withTempDir('mesh-svid-verify-', async (dir) => {
    const svid = path.join(dir, 'svid.pem');
    const bundle = path.join(dir, 'bundle.pem');
    await writeFile(svid, chainPem);
    await writeFile(bundle, bundlePem);
    const args = ['--svid', svid, '--bundle', bundle];
    if (options.at !== undefined) args.push('--at', options.at.toISOString().replace(/\.\d{3}Z$/, 'Z'));
    const result = await run(binary, args, { timeoutMs: 30_000 });
    if (result.code !== 0 && result.code !== 1) {
      throw new MeshError('MESH_E_INTERNAL', `svid-verify exited with ${result.code ?? result.signal}: ${result.stderr.trim()}`);
    }
    try {
      return JSON.parse(result.stdout) as SvidVerifyResult;
    } catch (err) {
      throw new MeshError('MESH_E_INTERNAL', `svid-verify printed no JSON: ${JSON.stringify(result.stdout)}`, { cause: err });
    }
  });
}

/** `openssl verify -CAfile bundle [-untrusted intermediates] -purpose <purpose> leaf`. */
export async function opensslVerify(chainPem: string, bundlePem: string, purpose: OpensslPurpose): Promise<OpensslVerifyResult> {
  const [leaf, ...intermediates] = splitPemChain(chainPem);
  if (leaf === undefined) return { ok: false, code: null, output: 'no CERTIFICATE block in the chain' };
  return withTempDir('mesh-svid-verify-', async (dir) => {
    const files = { leaf: path.join(dir, 'leaf.pem'), bundle: path.join(dir, 'bundle.pem'), untrusted: path.join(dir, 'untrusted.pem') };
    await writeFile(files.leaf, leaf);
    await writeFile(files.bundle, bundlePem);
    const args = ['verify', '-CAfile', files.bundle];
    if (intermediates.length > 0) {
      await writeFile(files.untrusted, intermediates.join(''));
      args.push('-untrusted', files.untrusted);
    }
    args.push('-purpose', purpose, files.leaf);
    const result = await opensslRun(args);
    return { ok: result.code === 0, code: result.code, output: (result.stdout + result.stderr).trim() };
  });
}
