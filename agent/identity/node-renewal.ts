/**
 * The node SVID of the running agent: loaded from <dataDir>/identity (made by
 * `mesh-agent join`), renewed by its own rotation manager with a new node key
 * each time. The new key and certificate are saved before they are used, so a
 * restart always finds the key that goes with the certificate in use; then
 * onRenewed lets the connection reconnect with them.
 */
import { MeshError } from '../../lib/errors.js';
import type { ControlPlaneClient, Svid } from './cp-client.js';
import type { ControlPlaneConnection } from './cp-connection.js';
import { requestNodeSvid } from './enroll.js';
import { heldState, type IdentityState, type SvidSource } from './identity-status.js';
import { type NodeIdentity, saveNodeIdentity } from './identity-store.js';
import { createRotationManager, type IssuedCert, leafTimes, type RotationManagerOptions } from './rotation-manager.js';

export interface NodeRenewalOptions {
  dataDir: string;
  identity: NodeIdentity;
  connection: ControlPlaneConnection;
  rotation: RotationManagerOptions;
  /** The bundle held now (saved with the node identity). */
  bundlePem: () => string;
  /** Runs disk writes in order (see write-queue.ts). */
  persist: (what: string, write: () => Promise<void>) => Promise<void>;
  /** The new node SVID is saved and in use: reconnect with it. */
  onRenewed: () => void;
  /** How a new node SVID is obtained; default RenewNode with the current one (Kubernetes mode: attest again with the token files). */
  request?: (client: ControlPlaneClient) => Promise<{ svid: Svid; keyPem: string }>;
}

export interface NodeRenewal {
  /** The node identity in use (the last one saved). */
  identity(): NodeIdentity;
  /** Starts renewing at the usual time (or at once if that has passed). */
  start(): void;
  /** Renews at once if the last attempt failed (the control plane is back). */
  retryFailed(): void;
  state(): IdentityState;
  stop(): void;
}

const NODE = 'node';

export function createNodeRenewal(options: NodeRenewalOptions): NodeRenewal {
  const { connection } = options;
  const rotation = createRotationManager(options.rotation);
  let identity = options.identity;
  let source: SvidSource = 'disk';
  let stopped = false;

  const renew = async (): Promise<IssuedCert> => {
    const { svid, keyPem } = await connection.call(options.request ?? requestNodeSvid);
    if (stopped) throw new MeshError('MESH_E_INTERNAL', 'stopped while renewing the node SVID');
    const next: NodeIdentity = { ...identity, keyPem, chainPem: svid.chainPem };
    // Saved before use: a restart must find the key that goes with the certificate in use.
    await options.persist('save the node identity', () =>
      saveNodeIdentity(options.dataDir, { ...next, bundlePem: options.bundlePem() || svid.bundle.rootsPem }),
    );
    identity = next;
    source = 'control-plane';
    options.onRenewed();
    return leafTimes(svid.chainPem, svid.serial);
  };

  return {
    identity: () => identity,
    start() {
      rotation.add(NODE, leafTimes(identity.chainPem), renew);
    },
    retryFailed: () => rotation.retryFailed(),
    state() {
      const managed = rotation.status()[0];
      return managed === undefined
        ? { spiffeId: identity.spiffeId, failures: 0, state: 'pending' }
        : heldState(identity.spiffeId, managed, source);
    },
    stop() {
      stopped = true;
      rotation.stop();
    },
  };
}
