/**
 * The running agent's connection to the control plane: one gRPC client at a
 * time, made with the current node SVID and trust bundle, and a count of the
 * calls running on it.
 *
 * replace() makes a new client (after a node renewal, a bundle change, or a
 * watch that failed) and retires the old one; a retired client is closed only
 * once its last call has ended, so a renewal running while the node SVID
 * changes is not cut off. Calls always start on the newest client.
 */
import { MeshError, toMeshError } from '../../lib/errors.js';
import { type ControlPlaneClient, connectControlPlane } from './cp-client.js';

export interface ConnectionCredentials {
  node: { chainPem: string; keyPem: string };
  bundlePem: string;
}

export interface ControlPlaneConnectionOptions {
  address: string;
  trustDomain: string;
  connect?: typeof connectControlPlane;
}

export interface ControlPlaneConnection {
  readonly address: string;
  /**
   * Retires the current client and makes a new one with these credentials.
   * Unusable credentials (a damaged key or bundle) leave no client and throw
   * MESH_E_CERT_INVALID (or the factory's code); calls then fail as unavailable.
   */
  replace(credentials: ConnectionCredentials): ControlPlaneClient;
  /** Runs fn on the current client, counted as in flight; MESH_E_CONTROLPLANE_UNAVAILABLE when there is none. */
  call<T>(fn: (client: ControlPlaneClient) => Promise<T>): Promise<T>;
  /** The current client (for the bundle watch, which ends with it); undefined when none or closed. */
  client(): ControlPlaneClient | undefined;
  /** Calls running, on every client not yet closed. */
  inflight(): number;
  /** Called after each replace() that made a new client (streams reopen on it). */
  onReplace(listener: () => void): () => void;
  /** Retires the client for good; later calls fail as unavailable. */
  close(): void;
}

/** What another stream over the agent's control-plane connection needs: the current client, and news of a new one. */
export interface ControlPlaneLink {
  client(): ControlPlaneClient | undefined;
  onClient(listener: () => void): () => void;
}

interface Slot {
  readonly client: ControlPlaneClient;
  inflight: number;
  retired: boolean;
}

export function createControlPlaneConnection(options: ControlPlaneConnectionOptions): ControlPlaneConnection {
  const connect = options.connect ?? connectControlPlane;
  const open = new Set<Slot>();
  let current: Slot | undefined;
  let closed = false;
  const replaced = new Set<() => void>();

  const release = (slot: Slot) => {
    if (slot.retired && slot.inflight === 0 && open.delete(slot)) slot.client.close();
  };

  const retire = () => {
    if (current === undefined) return;
    const slot = current;
    current = undefined;
    slot.retired = true;
    release(slot);
  };

  return {
    address: options.address,
    replace(credentials) {
      if (closed) throw new MeshError('MESH_E_INTERNAL', 'the control-plane connection is closed');
      retire();
      let client: ControlPlaneClient;
      try {
        client = connect({
          address: options.address,
          trustDomain: options.trustDomain,
          bundlePem: credentials.bundlePem,
          node: credentials.node,
        });
      } catch (err) {
        throw toMeshError(err, 'MESH_E_CERT_INVALID');
      }
      current = { client, inflight: 0, retired: false };
      open.add(current);
      for (const listener of [...replaced]) listener();
      return client;
    },
    async call(fn) {
      const slot = current;
      if (slot === undefined || closed) throw new MeshError('MESH_E_CONTROLPLANE_UNAVAILABLE', 'not connected to the control plane');
      slot.inflight += 1;
      try {
        return await fn(slot.client);
      } finally {
        slot.inflight -= 1;
        release(slot);
      }
    },
    client: () => (closed ? undefined : current?.client),
    inflight: () => [...open].reduce((n, slot) => n + slot.inflight, 0),
    onReplace(listener) {
      replaced.add(listener);
      return () => {
        replaced.delete(listener);
      };
    },
    close() {
      closed = true;
      retire();
    },
  };
}
