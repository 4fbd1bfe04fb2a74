/**
 * The agent's side of Kubernetes pod attestation (agent.yaml `kubernetes`):
 * the node identity comes from the pod's projected service-account token(s)
 * instead of a join token. A new node key is made here for every attestation;
 * the token files are read afresh each time (the kubelet rotates them), and
 * their contents are never logged or written anywhere.
 */
import { readFile } from 'node:fs/promises';
import { MeshError, toMeshError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { type KeyPair, newKeyPair } from '../../lib/secret-files.js';
import { createCsr } from '../../lib/x509/csr-builder.js';
import { type ControlPlaneClient, connectControlPlane, type Svid } from './cp-client.js';
import { loadNodeIdentity, type NodeIdentity, saveNodeIdentity } from './identity-store.js';
import type { NodeAttestation } from './workload-identities.js';

const pkcs8Pem = (key: KeyPair): string => key.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;

/** The current tokens of the token files, in order; MESH_E_KUBE_TOKEN_INVALID names a file that cannot be read or is empty. */
export async function readTokenFiles(files: readonly string[]): Promise<string[]> {
  return Promise.all(
    files.map(async (file) => {
      let text: string;
      try {
        text = await readFile(file, 'utf8');
      } catch (err) {
        throw new MeshError('MESH_E_KUBE_TOKEN_INVALID', `cannot read the service-account token file ${file}: ${(err as Error).message}`, {
          details: { file },
        });
      }
      const token = text.trim();
      if (token === '')
        throw new MeshError('MESH_E_KUBE_TOKEN_INVALID', `the service-account token file ${file} is empty`, { details: { file } });
      return token;
    }),
  );
}

/** A node SVID for a new node key made here, attested by the tokens of `tokenFiles`. */
export async function attestNode(client: ControlPlaneClient, tokenFiles: readonly string[]): Promise<{ svid: Svid; keyPem: string }> {
  if (client.attestKubernetes === undefined) {
    throw new MeshError('MESH_E_CONTROLPLANE_UNSUPPORTED', 'this control-plane client cannot attest Kubernetes pods');
  }
  const tokens = await readTokenFiles(tokenFiles);
  const key = newKeyPair();
  const svid = await client.attestKubernetes(tokens, await createCsr(key.privateKey, key.publicKey));
  return { svid, keyPem: pkcs8Pem(key) };
}

/**
 * At start in kubernetes mode: attests with the token files and saves the
 * node identity in <dataDir>/identity (replacing any earlier one: the pod's
 * token, not the disk, decides), so the rest of the agent runs as after a join.
 */
export async function enrollKubernetes(
  input: { dataDir: string; address: string; trustDomain: string; bundlePem: string; tokenFiles: readonly string[] },
  client: ControlPlaneClient,
): Promise<NodeIdentity> {
  const { svid, keyPem } = await attestNode(client, input.tokenFiles);
  const identity: NodeIdentity = {
    controlPlane: input.address,
    trustDomain: input.trustDomain,
    spiffeId: svid.spiffeId,
    keyPem,
    chainPem: svid.chainPem,
    bundlePem: svid.bundle.rootsPem,
  };
  await saveNodeIdentity(input.dataDir, identity);
  return identity;
}

/**
 * The NodeAttestation of an agent in kubernetes mode (workload-identities.ts):
 * at start, attest with the token files and save the node identity, trusting
 * the bundle saved by an earlier run or else controlPlane.caBundle; when the
 * control plane cannot be reached and an identity is on disk, start with it
 * (it is renewed by attesting again once the control plane answers). Every
 * refusal (pod gone, not allowed, bad token) stops the start with its code.
 */
export function kubernetesAttestation(
  input: { dataDir: string; address: string; trustDomain: string; caBundle: string; tokenFiles: readonly string[]; log: Logger },
  connect: typeof connectControlPlane = connectControlPlane,
): NodeAttestation {
  const { log } = input;
  return {
    async enroll() {
      const stored = await loadNodeIdentity(input.dataDir).catch(() => undefined);
      const bundlePem = stored?.bundlePem ?? (await readCaBundle(input.caBundle));
      const client = connect({ address: input.address, trustDomain: input.trustDomain, bundlePem });
      try {
        const identity = await enrollKubernetes({ ...input, bundlePem }, client);
        log.info('node identity attested with the service-account token', {
          spiffeId: identity.spiffeId,
          tokenFiles: input.tokenFiles.length,
        });
      } catch (err) {
        const e = toMeshError(err);
        if (e.code !== 'MESH_E_CONTROLPLANE_UNAVAILABLE' || stored === undefined) throw e;
        log.warn('the control plane is not reachable; starting with the node identity on disk until attestation succeeds', {
          spiffeId: stored.spiffeId,
          error: e,
        });
      } finally {
        client.close();
      }
    },
    renew: (client) => attestNode(client, input.tokenFiles),
  };
}

async function readCaBundle(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new MeshError('MESH_E_CONFIG_INVALID', `controlPlane.caBundle: cannot read ${file}: ${(err as Error).message}`, {
      details: { file, issues: [{ path: 'controlPlane.caBundle', message: 'unreadable' }] },
    });
  }
}
