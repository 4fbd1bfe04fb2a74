/**
 * The agent's identity on disk, in <dataDir>/identity (0700): the node key
 * (0600, made on this host and never sent), the node SVID chain, the trust
 * bundle, and where the control plane is. Everything is written atomically,
 * the key and chain as a pair (secret-files.ts writeKeyAndChain), so a crash
 * leaves the previous identity whole.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { MeshError } from '../../lib/errors.js';
import { ensurePrivateDir, readKeyAndChain, writeFileAtomic, writeKeyAndChain } from '../../lib/secret-files.js';
import { parseSpiffeId } from '../../lib/spiffe-id.js';
import { parseCertificates, uriSans } from '../../lib/x509/cert-info.js';

export interface NodeIdentity {
  controlPlane: string;
  trustDomain: string;
  spiffeId: string;
  keyPem: string;
  chainPem: string;
  bundlePem: string;
}

export function identityDir(dataDir: string): string {
  return path.join(dataDir, 'identity');
}

const files = (dataDir: string) => {
  const dir = identityDir(dataDir);
  return {
    dir,
    key: path.join(dir, 'node.key'),
    chain: path.join(dir, 'node.pem'),
    bundle: path.join(dir, 'bundle.pem'),
    meta: path.join(dir, 'node.json'),
  };
};

export async function saveNodeIdentity(dataDir: string, identity: NodeIdentity): Promise<void> {
  const f = files(dataDir);
  await ensurePrivateDir(f.dir);
  // As a pair: a crash between the two writes leaves the previous pair to load.
  await writeKeyAndChain(f, identity);
  await writeFileAtomic(f.bundle, identity.bundlePem, 0o644);
  await writeFileAtomic(
    f.meta,
    `${JSON.stringify({ controlPlane: identity.controlPlane, trustDomain: identity.trustDomain, spiffeId: identity.spiffeId }, null, 2)}\n`,
    0o644,
  );
}

export async function saveBundle(dataDir: string, bundlePem: string): Promise<void> {
  await writeFileAtomic(files(dataDir).bundle, bundlePem, 0o644);
}

export async function loadNodeIdentity(dataDir: string): Promise<NodeIdentity> {
  const f = files(dataDir);
  try {
    const meta = JSON.parse(await readFile(f.meta, 'utf8')) as { controlPlane: string; trustDomain: string; spiffeId: string };
    const { keyPem, chainPem } = await readKeyAndChain(f);
    return { ...meta, keyPem, chainPem, bundlePem: await readFile(f.bundle, 'utf8') };
  } catch (err) {
    throw new MeshError('MESH_E_NOT_JOINED', `no node identity in ${f.dir}: run mesh-agent join first (${(err as Error).message})`, {
      cause: err,
      details: { dir: f.dir },
    });
  }
}

/**
 * The control plane address this host joined with (`mesh-agent join
 * --controlplane`); undefined when the host has not joined.
 */
export async function joinedControlPlane(dataDir: string): Promise<string | undefined> {
  const f = files(dataDir);
  let text: string;
  try {
    text = await readFile(f.meta, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new MeshError('MESH_E_NOT_JOINED', `cannot read ${f.meta}: ${(err as Error).message}`, { cause: err, details: { file: f.meta } });
  }
  try {
    const address = (JSON.parse(text) as { controlPlane?: unknown }).controlPlane;
    return typeof address === 'string' && address !== '' ? address : undefined;
  } catch (err) {
    throw new MeshError('MESH_E_NOT_JOINED', `${f.meta} is damaged: ${(err as Error).message}`, { cause: err, details: { file: f.meta } });
  }
}

/**
 * The trust domain this host joined, as the node SVID names it (its URI SAN);
 * undefined when the host has not joined. A damaged identity is an error.
 */
export async function joinedTrustDomain(dataDir: string): Promise<string | undefined> {
  const f = files(dataDir);
  let pem: string;
  try {
    pem = await readFile(f.chain, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new MeshError('MESH_E_CERT_INVALID', `cannot read the node SVID ${f.chain}: ${(err as Error).message}`, { cause: err });
  }
  const [leaf] = parseCertificates(pem, f.chain);
  const [uri] = leaf === undefined ? [] : uriSans(leaf);
  if (uri === undefined) throw new MeshError('MESH_E_CERT_INVALID', `the node SVID ${f.chain} has no SPIFFE ID`);
  return parseSpiffeId(uri).trustDomain;
}
