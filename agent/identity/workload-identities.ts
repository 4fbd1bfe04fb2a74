/**
 * The running agent's identities for the data plane: the node SVID (from
 * `mesh-agent join`, in <dataDir>/identity), one SVID per local workload and
 * the trust bundle, all kept fresh while the agent runs. This file composes
 * four parts, each with its own tests:
 *
 * - cp-connection.ts: one control-plane client at a time, made with the node
 *   SVID and the bundle; a replaced client is closed once its calls end.
 * - bundle-watch.ts: the bundle, followed with the WatchBundle stream, which
 *   is reopened with backoff when it fails (control plane restarted); each
 *   change is saved to disk and the client reconnects trusting the new roots.
 * - node-renewal.ts: the node SVID, renewed by the rotation manager with a new
 *   node key each time, saved to disk before use (a restart uses it); the
 *   client then reconnects with the new certificate.
 * - workload-svids.ts: setWanted() names the SPIFFE IDs of the local
 *   workloads. Each is obtained with a new P-256 key made here; only the CSR
 *   travels. A failed first fetch is retried with backoff; once held, the
 *   rotation manager renews it (new key too). A dropped ID is forgotten, its
 *   stored files removed, and a late answer for it is thrown away.
 *
 * Workload SVIDs and keys are kept in <dataDir>/identity/workloads (see
 * workload-svid-store.ts). start() loads the stored ones that are still valid
 * and serves the wanted ones at once, before any control-plane call, so a
 * restart during a control-plane outage serves the last SVIDs until they
 * expire; they are renewed as soon as the control plane answers (at once if
 * their renewal time has passed). Invalid or expired stored files are ignored
 * with a warning and replaced by the next fetch. states() shows each SVID's
 * source ('disk' until its first renewal, then 'control-plane').
 *
 * onChange listeners hear of every SVID loaded, obtained, renewed or dropped
 * and every bundle change. Nothing secret is logged: no keys, no PEMs.
 */
import type { Clock } from '../../lib/clock.js';
import { MeshError, toMeshError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import type { Identities } from '../model/proxy-model.js';
import { type BundleWatch, createBundleWatch } from './bundle-watch.js';
import type { ControlPlaneClient, connectControlPlane, Svid } from './cp-client.js';
import { type ControlPlaneConnection, type ControlPlaneLink, createControlPlaneConnection } from './cp-connection.js';
import { requestWorkloadSvid } from './enroll.js';
import type { IdentitiesStatus } from './identity-status.js';
import { loadNodeIdentity, saveBundle } from './identity-store.js';
import { createNodeRenewal, type NodeRenewal } from './node-renewal.js';
import { DEFAULT_RETRY_BACKOFF, type RotationManagerOptions } from './rotation-manager.js';
import type { StoredSvid } from './svid-check.js';
import { createWorkloadSvidStore } from './workload-svid-store.js';
import { createWorkloadSvids } from './workload-svids.js';
import { createWriteQueue } from './write-queue.js';

export type { IdentitiesStatus, IdentityState, SvidSource } from './identity-status.js';

export interface WorkloadIdentitiesOptions {
  /** The node identity lives in <dataDir>/identity (after `mesh-agent join`); workload SVIDs in <dataDir>/identity/workloads. */
  dataDir: string;
  /** Control plane host:port; default: the one stored at join. */
  address?: string;
  clock: Clock;
  log: Logger;
  connect?: typeof connectControlPlane;
  /** Renewal ratio, jitter, backoff (also for first fetches and reopening the bundle watch), watchdog, random; clock and log come from above. */
  rotation?: Partial<RotationManagerOptions>;
  /** Kubernetes mode: how the node identity is made or refreshed before it is loaded, and how it is renewed (kube-attest.ts). */
  attestation?: NodeAttestation;
}

/** A node identity that comes from attestation (Kubernetes) rather than from `mesh-agent join`. */
export interface NodeAttestation {
  /** Attests and saves the node identity in <dataDir>/identity, before start() loads it. */
  enroll(): Promise<void>;
  /** A new node SVID (new key made here) for renewal, over the running connection. */
  renew(client: ControlPlaneClient): Promise<{ svid: Svid; keyPem: string }>;
}

export interface WorkloadIdentities {
  /**
   * Loads the node identity (MESH_E_NOT_JOINED if missing) and the stored workload SVIDs (serving the wanted
   * ones), connects, watches the bundle, renews the node SVID.
   */
  start(): Promise<void>;
  /** The SPIFFE IDs of the local workloads: new ones are served from disk or fetched, removed ones dropped. */
  setWanted(spiffeIds: readonly string[]): void;
  /** The SVIDs held (not the ones still pending) and the trust bundle. */
  current(): Identities;
  onChange(listener: () => void): () => void;
  states(): IdentitiesStatus;
  /** The control-plane connection for other streams (Policy.Watch): no client until start() loaded the node identity. */
  link(): ControlPlaneLink;
  /** Stops every timer, watch and call; settles once the disk writes already asked for are done. Removes no file. */
  stop(): Promise<void>;
}

export function createWorkloadIdentities(options: WorkloadIdentitiesOptions): WorkloadIdentities {
  const { clock, dataDir } = options;
  const log = options.log.child({ component: 'identities' });
  const backoff = options.rotation?.backoff ?? DEFAULT_RETRY_BACKOFF;
  const random = options.rotation?.random ?? Math.random;
  const rotation: RotationManagerOptions = { ...options.rotation, clock, log };
  const queue = createWriteQueue(log);
  const store = createWorkloadSvidStore(dataDir);
  const listeners = new Set<() => void>();
  const linkListeners = new Set<() => void>();
  let address = options.address ?? '';
  let connection: ControlPlaneConnection | undefined;
  let node: NodeRenewal | undefined;
  let watch: BundleWatch | undefined;
  let startCalled = false;
  let stopped = false;

  const emit = () => {
    for (const listener of listeners) {
      try {
        listener();
      } catch (err) {
        log.error('an identity change listener failed', { error: toMeshError(err) });
      }
    }
  };

  const workloads = createWorkloadSvids({
    clock,
    log,
    rotation,
    backoff,
    random,
    obtain: async (spiffeId) => {
      if (connection === undefined) throw new MeshError('MESH_E_CONTROLPLANE_UNAVAILABLE', 'not connected to the control plane');
      return connection.call((client) => requestWorkloadSvid(client, spiffeId));
    },
    store,
    persist: queue.persist,
    onChange: emit,
  });

  /** The valid stored workload SVIDs; unreadable or invalid ones are reported and left for the next fetch to replace. */
  const loadStored = async (bundlePem: string): Promise<StoredSvid[]> => {
    try {
      const { svids, rejected } = await store.load(bundlePem, clock.now());
      for (const r of rejected) log.warn('stored workload SVID ignored; a new one will be fetched', { folder: r.dir, reason: r.reason });
      return svids;
    } catch (err) {
      log.warn('stored workload SVIDs cannot be read; new ones will be fetched', { error: toMeshError(err) });
      return [];
    }
  };

  return {
    async start() {
      if (startCalled || stopped) throw new MeshError('MESH_E_INTERNAL', 'workload identities can be started once');
      startCalled = true;
      if (options.attestation !== undefined) await options.attestation.enroll();
      if (stopped) return;
      const identity = await loadNodeIdentity(dataDir);
      if (stopped) return;
      const stored = await loadStored(identity.bundlePem);
      if (stopped) return;
      address = options.address ?? identity.controlPlane;
      const conn = createControlPlaneConnection({
        address,
        trustDomain: identity.trustDomain,
        ...(options.connect === undefined ? {} : { connect: options.connect }),
      });
      conn.onReplace(() => {
        for (const listener of [...linkListeners]) listener();
      });
      const nodeRenewal = createNodeRenewal({
        dataDir,
        identity,
        connection: conn,
        rotation,
        bundlePem: () => bundleWatch.rootsPem(),
        persist: queue.persist,
        onRenewed: () => bundleWatch.reconnect(),
        ...(options.attestation === undefined ? {} : { request: options.attestation.renew }),
      });
      const bundleWatch = createBundleWatch({
        connection: conn,
        clock,
        log,
        backoff,
        random,
        node: () => {
          const { chainPem, keyPem } = nodeRenewal.identity();
          return { chainPem, keyPem };
        },
        rootsPem: identity.bundlePem,
        save: (rootsPem) => queue.persist('save the trust bundle', () => saveBundle(dataDir, rootsPem)),
        onChange: emit,
        onRecovered: () => {
          nodeRenewal.retryFailed();
          workloads.retryFailed();
        },
      });
      [connection, node, watch] = [conn, nodeRenewal, bundleWatch];
      // Served before any control-plane call: a restart during an outage keeps serving.
      workloads.adopt(stored);
      const error = bundleWatch.reconnect();
      if (error !== undefined) {
        bundleWatch.stop();
        throw error;
      }
      nodeRenewal.start();
      log.info('node identity loaded', { spiffeId: identity.spiffeId, controlPlane: address, storedWorkloadSvids: stored.length });
      workloads.enable();
    },
    setWanted(spiffeIds) {
      if (!stopped) workloads.setWanted(spiffeIds);
    },
    current() {
      return { certs: workloads.current(), bundlePem: watch?.rootsPem() ?? '' };
    },
    onChange(listener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
    states() {
      const w = watch?.status();
      return {
        node: node?.state() ?? { spiffeId: '', failures: 0, state: 'pending' },
        workloads: workloads.states(),
        bundle: w?.bundle ?? { sequence: 0, roots: 0 },
        controlPlane: { address, ...(w?.controlPlane ?? { state: 'connecting' }) },
      };
    },
    link: () => ({
      client: () => (stopped ? undefined : connection?.client()),
      onClient(listener) {
        linkListeners.add(listener);
        return () => {
          linkListeners.delete(listener);
        };
      },
    }),
    async stop() {
      if (!stopped) {
        stopped = true;
        workloads.stop();
        node?.stop();
        watch?.stop();
        connection?.close();
      }
      await queue.idle();
    },
  };
}
