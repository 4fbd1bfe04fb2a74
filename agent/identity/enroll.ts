/**
 * Joining and obtaining SVIDs: keys are generated here, on the host; only
 * CSRs travel. The node identity is stored under <dataDir>/identity; workload
 * SVIDs are written where the caller asks.
 */
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { MeshError } from '../../lib/errors.js';
import { ensurePrivateDir, type KeyPair, newKeyPair, writeFileAtomic } from '../../lib/secret-files.js';
import { parseSpiffeId } from '../../lib/spiffe-id.js';
import { parseCertificates, uriSans } from '../../lib/x509/cert-info.js';
import { createCsr } from '../../lib/x509/csr-builder.js';
import { type ControlPlaneClient, connectControlPlane, type Svid } from './cp-client.js';
import { identityDir, loadNodeIdentity, type NodeIdentity, saveBundle, saveNodeIdentity } from './identity-store.js';

export type ClientFactory = typeof connectControlPlane;

/** The trust domain a bundle's roots name in their URI SAN (spiffe://<td>). */
export function trustDomainOfBundle(bundlePem: string, what: string): string | undefined {
  for (const cert of parseCertificates(bundlePem, what)) {
    for (const uri of uriSans(cert)) {
      try {
        return parseSpiffeId(uri).trustDomain;
      } catch {
        // not a SPIFFE ID; look further
      }
    }
  }
  return undefined;
}

export interface SvidSummary {
  spiffeId: string;
  serial: string;
  notAfter: number;
}

const summary = (svid: Svid): SvidSummary => ({ spiffeId: svid.spiffeId, serial: svid.serial, notAfter: svid.notAfter });

const pkcs8Pem = (key: KeyPair): string => key.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;

/** A new node SVID for a new node key made here, authenticated by the current node SVID. */
export async function requestNodeSvid(client: ControlPlaneClient): Promise<{ svid: Svid; keyPem: string }> {
  const key = newKeyPair();
  const svid = await client.renewNode(await createCsr(key.privateKey, key.publicKey));
  return { svid, keyPem: pkcs8Pem(key) };
}

/** A workload SVID for a new key made here; the leaf must carry exactly the requested SPIFFE ID (MESH_E_CERT_INVALID). */
export async function requestWorkloadSvid(client: ControlPlaneClient, spiffeId: string): Promise<{ svid: Svid; keyPem: string }> {
  const key = newKeyPair();
  const svid = await client.signWorkload(spiffeId, await createCsr(key.privateKey, key.publicKey));
  const sans = uriSans(new X509Certificate(svid.chainPem));
  if (sans.length !== 1 || sans[0] !== spiffeId) {
    throw new MeshError(
      'MESH_E_CERT_INVALID',
      `the control plane returned a certificate for ${sans.join(', ') || 'no URI'}, not ${spiffeId}`,
    );
  }
  return { svid, keyPem: pkcs8Pem(key) };
}

/**
 * Refuses to join a host that already joined (a node SVID in <dataDir>/identity):
 * MESH_E_ALREADY_JOINED, and the existing identity is left untouched.
 */
export async function refuseIfJoined(dataDir: string): Promise<void> {
  const dir = identityDir(dataDir);
  const meta = await readFile(path.join(dir, 'node.json'), 'utf8').catch(() => undefined);
  const chain = await readFile(path.join(dir, 'node.pem'), 'utf8').catch(() => undefined);
  if (meta === undefined && chain === undefined) return;
  let spiffeId = 'an existing node identity';
  try {
    spiffeId = (JSON.parse(meta ?? '{}') as { spiffeId?: string }).spiffeId ?? spiffeId;
  } catch {
    // a damaged node.json: still an identity not to overwrite silently
  }
  throw new MeshError(
    'MESH_E_ALREADY_JOINED',
    `this host already joined the mesh as ${spiffeId} (${dir}); its identity is left as it is. ` +
      'To replace it with a new node key and SVID (a new join token), run mesh-agent join again with --force',
    { details: { dir, spiffeId } },
  );
}

/** The steps of a join, in order, for progress output (`mesh-agent join` prints them on stderr). */
export type JoinStep =
  | { step: 'key' }
  | { step: 'csr-sent'; address: string }
  | { step: 'svid'; spiffeId: string; notAfter: number }
  | { step: 'written'; dir: string };

export async function joinMesh(
  input: { address: string; token: string; bundlePem: string; dataDir: string; trustDomain?: string; force?: boolean },
  connect: ClientFactory = connectControlPlane,
  progress: (step: JoinStep) => void = () => {},
): Promise<SvidSummary> {
  if (input.force !== true) await refuseIfJoined(input.dataDir);
  const trustDomain = input.trustDomain ?? trustDomainOfBundle(input.bundlePem, 'the CA bundle');
  if (trustDomain === undefined) {
    throw new MeshError('MESH_E_USAGE', 'the CA bundle names no trust domain (no spiffe:// URI SAN on its roots); pass --trust-domain');
  }
  const key = newKeyPair();
  progress({ step: 'key' });
  const client = connect({ address: input.address, trustDomain, bundlePem: input.bundlePem });
  try {
    const csr = await createCsr(key.privateKey, key.publicKey);
    progress({ step: 'csr-sent', address: input.address });
    const svid = await client.join(input.token, csr);
    progress({ step: 'svid', spiffeId: svid.spiffeId, notAfter: svid.notAfter });
    await saveNodeIdentity(input.dataDir, {
      controlPlane: input.address,
      trustDomain,
      spiffeId: svid.spiffeId,
      keyPem: pkcs8Pem(key),
      chainPem: svid.chainPem,
      bundlePem: svid.bundle.rootsPem,
    });
    progress({ step: 'written', dir: identityDir(input.dataDir) });
    return summary(svid);
  } finally {
    client.close();
  }
}

async function withNodeClient<T>(
  dataDir: string,
  address: string | undefined,
  connect: ClientFactory,
  fn: (client: ControlPlaneClient, identity: NodeIdentity) => Promise<T>,
): Promise<T> {
  const identity = await loadNodeIdentity(dataDir);
  const client = connect({
    address: address ?? identity.controlPlane,
    trustDomain: identity.trustDomain,
    bundlePem: identity.bundlePem,
    node: { chainPem: identity.chainPem, keyPem: identity.keyPem },
  });
  try {
    return await fn(client, identity);
  } finally {
    client.close();
  }
}

/** Renews the node SVID with a new node key, authenticated by the current node SVID (no token). */
export async function renewNodeSvid(
  input: { dataDir: string; address?: string },
  connect: ClientFactory = connectControlPlane,
): Promise<SvidSummary> {
  return withNodeClient(input.dataDir, input.address, connect, async (client, identity) => {
    const { svid, keyPem } = await requestNodeSvid(client);
    await saveNodeIdentity(input.dataDir, {
      ...identity,
      keyPem,
      chainPem: svid.chainPem,
      bundlePem: svid.bundle.rootsPem,
    });
    return summary(svid);
  });
}

/** A workload SVID: new key pair here, CSR signed by the control plane, written to outDir. */
export async function fetchWorkloadSvid(
  input: { dataDir: string; address?: string; spiffeId: string; outDir: string },
  connect: ClientFactory = connectControlPlane,
): Promise<SvidSummary & { files: { svid: string; key: string; bundle: string } }> {
  parseSpiffeId(input.spiffeId);
  return withNodeClient(input.dataDir, input.address, connect, async (client) => {
    const { svid, keyPem } = await requestWorkloadSvid(client, input.spiffeId);
    await ensurePrivateDir(input.outDir);
    const files = {
      svid: path.join(input.outDir, 'svid.pem'),
      key: path.join(input.outDir, 'svid.key'),
      bundle: path.join(input.outDir, 'bundle.pem'),
    };
    await writeFileAtomic(files.key, keyPem, 0o600);
    await writeFileAtomic(files.svid, svid.chainPem, 0o644);
    await writeFileAtomic(files.bundle, svid.bundle.rootsPem, 0o644);
    await saveBundle(input.dataDir, svid.bundle.rootsPem);
    return { ...summary(svid), files };
  });
}
