/**
 * The running agent's identities for the data plane: the node SVID (from
 * `mesh-agent join`, in <dataDir>/identity), one SVID per local workload and
 * the trust bundle, all kept fresh while the agent runs.
 *
 * - Node SVID: renewed by the rotation manager with a new node key each time,
 *   saved to disk (a restart uses it), and the gRPC client is reconnected with
 *   the new certificate.
 * - Workload SVIDs: setWanted() names the SPIFFE IDs of the local workloads.
 *   Each is obtained with a new P-256 key made here and kept in memory only
 *   (never written to disk); the CSR is signed by the control plane. A failed
 *   first fetch is retried with backoff; once held, the rotation manager
 *   renews it (new key too). A dropped ID is forgotten, and a late answer for
 *   it is thrown away.
 * - Bundle: followed with the WatchBundle stream, which is reopened with
 *   backoff when it fails (control plane restarted); each change is saved to
 *   disk and the client reconnects trusting the new roots.
 *
 * onChange listeners hear of every SVID obtained, renewed or dropped and every
 * bundle change. Nothing secret is logged: no keys, no PEMs.
 */
import { X509Certificate } from 'node:crypto';
import { backoffDelay } from '../../lib/backoff.js';
import type { Clock, TimerHandle } from '../../lib/clock.js';
import { MeshError, toMeshError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { parseSpiffeId } from '../../lib/spiffe-id.js';
import { fromPemAll } from '../../lib/x509/pem.js';
import type { Identities, IdentityMaterial } from '../model/proxy-model.js';
import { type BundleUpdate, type ControlPlaneClient, connectControlPlane } from './cp-client.js';
import { requestNodeSvid, requestWorkloadSvid } from './enroll.js';
import { loadNodeIdentity, type NodeIdentity, saveBundle, saveNodeIdentity } from './identity-store.js';
import {
  createRotationManager,
  DEFAULT_RETRY_BACKOFF,
  type IssuedCert,
  type RotationManager,
  type RotationManagerOptions,
  retryDelay,
} from './rotation-manager.js';

export interface WorkloadIdentitiesOptions {
  /** The node identity lives in <dataDir>/identity (after `mesh-agent join`). */
  dataDir: string;
  /** Control plane host:port; default: the one stored at join. */
  address?: string;
  clock: Clock;
  log: Logger;
  connect?: typeof connectControlPlane;
  /** Renewal ratio, jitter, backoff (also for first fetches and reopening the bundle watch), watchdog, random; clock and log come from above. */
  rotation?: Partial<RotationManagerOptions>;
}

export interface IdentityState {
  spiffeId: string;
  serial?: string;
  notAfter?: number;
  /** Next renewal, or next retry of a first fetch that failed. */
  nextRenewalAt?: number;
  lastError?: string;
  failures: number;
  state: 'pending' | 'ready' | 'failing';
}

export interface IdentitiesStatus {
  node: IdentityState;
  workloads: IdentityState[];
  bundle: { sequence: number; roots: number; updatedAt?: number };
  controlPlane: { address: string; state: 'connected' | 'connecting' | 'failing'; lastError?: string };
}

export interface WorkloadIdentities {
  /** Loads the node identity (MESH_E_NOT_JOINED if missing), connects, watches the bundle, renews the node SVID. */
  start(): Promise<void>;
  /** The SPIFFE IDs of the local workloads: new ones are fetched, removed ones dropped. */
  setWanted(spiffeIds: readonly string[]): void;
  /** The SVIDs held (not the ones still pending) and the trust bundle. */
  current(): Identities;
  onChange(listener: () => void): () => void;
  states(): IdentitiesStatus;
  stop(): void;
}

/** What the rotation manager tracks; workload certificates carry their material. */
interface Issued extends IssuedCert {
  readonly material?: IdentityMaterial;
}

interface Workload {
  readonly spiffeId: string;
  material: IdentityMaterial | undefined;
  failures: number;
  lastError: string | undefined;
  retryAt: number | undefined;
  retry: TimerHandle | undefined;
  fetching: boolean;
}

/** A client and the calls running on it, so a replaced client is closed only once idle. */
interface Connection {
  readonly client: ControlPlaneClient;
  inflight: number;
  retired: boolean;
}

const NODE = 'node';

function timesOf(chainPem: string, serial?: string): IssuedCert {
  const leaf = new X509Certificate(chainPem);
  return { serial: serial ?? leaf.serialNumber, notBefore: Date.parse(leaf.validFrom), notAfter: Date.parse(leaf.validTo) };
}

export function createWorkloadIdentities(options: WorkloadIdentitiesOptions): WorkloadIdentities {
  const { clock, dataDir } = options;
  const log = options.log.child({ component: 'identities' });
  const connect = options.connect ?? connectControlPlane;
  const backoff = options.rotation?.backoff ?? DEFAULT_RETRY_BACKOFF;
  const random = options.rotation?.random ?? Math.random;
  const rotation: RotationManager<Issued> = createRotationManager<Issued>({ ...options.rotation, clock, log });
  const workloads = new Map<string, Workload>();
  const listeners = new Set<() => void>();
  let identity: NodeIdentity | undefined;
  let address = options.address ?? '';
  let bundle: { rootsPem: string; sequence: number; updatedAt?: number } = { rootsPem: '', sequence: 0 };
  let conn: Connection | undefined;
  let cp: { state: 'connected' | 'connecting' | 'failing'; lastError?: string } = { state: 'connecting' };
  let cancelWatch: (() => void) | undefined;
  let watchRetry: TimerHandle | undefined;
  let watchFailures = 0;
  let startCalled = false;
  /** Node identity loaded and client made: fetches may start. */
  let started = false;
  let stopped = false;
  // Disk writes run one after another, so an older bundle never overwrites a newer one.
  let diskQueue: Promise<unknown> = Promise.resolve();
  const persist = (what: string, write: () => Promise<void>): Promise<void> => {
    const done = diskQueue.then(write);
    diskQueue = done.catch((err: unknown) => log.error(`could not save ${what}`, { error: toMeshError(err) }));
    return done;
  };

  const emit = () => {
    for (const listener of listeners) {
      try {
        listener();
      } catch (err) {
        log.error('an identity change listener failed', { error: toMeshError(err) });
      }
    }
  };

  const release = (c: Connection) => {
    if (c.retired && c.inflight === 0) c.client.close();
  };

  /** Runs a call on the current client; a client replaced meanwhile is closed when its last call ends. */
  const withClient = async <T>(fn: (client: ControlPlaneClient) => Promise<T>): Promise<T> => {
    const c = conn;
    if (c === undefined || stopped) throw new MeshError('MESH_E_CONTROLPLANE_UNAVAILABLE', 'not connected to the control plane');
    c.inflight += 1;
    try {
      return await fn(c.client);
    } finally {
      c.inflight -= 1;
      release(c);
    }
  };

  /** (Re)connects with the current node SVID and bundle, and reopens the bundle watch; returns why it could not. */
  const reconnect = (): MeshError | undefined => {
    if (stopped || identity === undefined) return undefined;
    cancelWatch?.();
    cancelWatch = undefined;
    if (conn !== undefined) {
      conn.retired = true;
      release(conn);
      conn = undefined;
    }
    try {
      const node = { chainPem: identity.chainPem, keyPem: identity.keyPem };
      conn = {
        client: connect({ address, trustDomain: identity.trustDomain, bundlePem: bundle.rootsPem, node }),
        inflight: 0,
        retired: false,
      };
    } catch (err) {
      // Unusable credentials (a damaged key or bundle): calls fail as unavailable, and this is retried.
      const error = toMeshError(err, 'MESH_E_CERT_INVALID');
      watchFailed(error);
      return error;
    }
    if (cp.state === 'connected') cp = { state: 'connecting' };
    watch();
    return undefined;
  };

  const watch = () => {
    watchRetry?.cancel();
    watchRetry = undefined;
    const c = conn;
    if (stopped || c === undefined) return;
    const current = () => conn === c && !stopped;
    try {
      cancelWatch = c.client.watchBundle(
        (update) => {
          if (!current()) return;
          watchFailures = 0;
          if (cp.state !== 'connected') log.info('bundle watch connected', { address, sequence: update.sequence });
          cp = { state: 'connected' };
          applyBundle(update);
        },
        (err) => {
          if (current()) watchFailed(err);
        },
      );
    } catch (err) {
      watchFailed(toMeshError(err));
    }
  };

  const watchFailed = (err: MeshError) => {
    cancelWatch?.();
    cancelWatch = undefined;
    watchFailures += 1;
    cp = { state: 'failing', lastError: `${err.code}: ${err.message}` };
    const delay = backoffDelay(backoff, watchFailures - 1, random);
    log.warn('bundle watch failed; reopening', { address, failures: watchFailures, retryInMs: delay, error: err });
    // A new client, not just a new call: gRPC's own reconnect backoff (up to 2 min) is not waited out.
    watchRetry = clock.setTimer(delay, () => {
      watchRetry = undefined;
      reconnect();
    });
  };

  const applyBundle = (update: BundleUpdate) => {
    if (update.rootsPem === bundle.rootsPem) {
      bundle = { ...bundle, sequence: update.sequence };
      return;
    }
    bundle = { rootsPem: update.rootsPem, sequence: update.sequence, updatedAt: clock.now() };
    log.info('trust bundle changed', { sequence: update.sequence, roots: fromPemAll(update.rootsPem).length });
    void persist('the trust bundle', () => saveBundle(dataDir, update.rootsPem)).catch(() => {});
    // Trust the new roots for the control plane's own certificate too.
    reconnect();
    emit();
  };

  const renewNode = async (): Promise<Issued> => {
    const { svid, keyPem } = await withClient(requestNodeSvid);
    const before = identity as NodeIdentity;
    const next: NodeIdentity = { ...before, keyPem, chainPem: svid.chainPem };
    if (stopped) throw new MeshError('MESH_E_INTERNAL', 'stopped while renewing the node SVID');
    // Saved before use: a restart must find the key that goes with the certificate in use.
    await persist('the node identity', () => saveNodeIdentity(dataDir, { ...next, bundlePem: bundle.rootsPem || svid.bundle.rootsPem }));
    identity = next;
    reconnect();
    return timesOf(svid.chainPem, svid.serial);
  };

  /** A workload SVID with a new key; the leaf must carry exactly the requested ID. */
  const obtain = async (spiffeId: string): Promise<Issued> => {
    const { svid, keyPem } = await withClient((client) => requestWorkloadSvid(client, spiffeId));
    return { ...timesOf(svid.chainPem, svid.serial), material: { chainPem: svid.chainPem, keyPem } };
  };

  const live = (w: Workload) => !stopped && workloads.get(w.spiffeId) === w;

  const fetchFirst = (w: Workload) => {
    if (!live(w) || w.fetching || w.material !== undefined || !started) return;
    w.fetching = true;
    w.retry?.cancel();
    w.retry = undefined;
    w.retryAt = undefined;
    obtain(w.spiffeId).then(
      (cert) => {
        w.fetching = false;
        if (!live(w)) return;
        w.material = cert.material;
        w.failures = 0;
        w.lastError = undefined;
        log.info('workload SVID obtained', { spiffeId: w.spiffeId, serial: cert.serial, notAfter: new Date(cert.notAfter).toISOString() });
        rotation.add(w.spiffeId, cert, () => obtain(w.spiffeId));
        emit();
      },
      (err: unknown) => {
        w.fetching = false;
        if (!live(w)) return;
        const error = toMeshError(err, 'MESH_E_CONTROLPLANE_UNAVAILABLE');
        w.failures += 1;
        w.lastError = `${error.code}: ${error.message}`;
        const delay = retryDelay(backoff, w.failures, 0, random);
        w.retryAt = clock.now() + delay;
        w.retry = clock.setTimer(delay, () => {
          w.retry = undefined;
          fetchFirst(w);
        });
        log.warn('workload SVID fetch failed; retrying', { spiffeId: w.spiffeId, failures: w.failures, retryInMs: delay, error });
      },
    );
  };

  rotation.onRenewed(({ name, cert }) => {
    if (name === NODE) return;
    const w = workloads.get(name);
    if (w === undefined || cert.material === undefined) return;
    w.material = cert.material;
    emit();
  });

  const stateOf = (held: boolean, failures: number, lastError?: string): IdentityState['state'] =>
    failures > 0 || (lastError !== undefined && !held) ? 'failing' : held ? 'ready' : 'pending';

  return {
    async start() {
      if (startCalled || stopped) throw new MeshError('MESH_E_INTERNAL', 'workload identities can be started once');
      startCalled = true;
      identity = await loadNodeIdentity(dataDir);
      if (stopped) return;
      address = options.address ?? identity.controlPlane;
      bundle = { rootsPem: identity.bundlePem, sequence: 0 };
      const error = reconnect();
      if (error !== undefined) {
        watchRetry?.cancel();
        throw error;
      }
      started = true;
      rotation.add(NODE, timesOf(identity.chainPem), renewNode);
      log.info('node identity loaded', { spiffeId: identity.spiffeId, controlPlane: address });
      for (const w of workloads.values()) fetchFirst(w);
    },
    setWanted(spiffeIds) {
      if (stopped) return;
      const wanted = new Set(spiffeIds);
      let dropped = false;
      for (const [id, w] of workloads) {
        if (wanted.has(id)) continue;
        workloads.delete(id);
        w.retry?.cancel();
        rotation.remove(id);
        if (w.material !== undefined) dropped = true;
        log.info('workload SVID dropped', { spiffeId: id });
      }
      for (const id of wanted) {
        if (workloads.has(id)) continue;
        const w: Workload = {
          spiffeId: id,
          material: undefined,
          failures: 0,
          lastError: undefined,
          retryAt: undefined,
          retry: undefined,
          fetching: false,
        };
        workloads.set(id, w);
        try {
          parseSpiffeId(id);
        } catch (err) {
          // Not retried: asking again cannot help.
          const error = toMeshError(err, 'MESH_E_SPIFFE_ID_INVALID');
          w.lastError = `${error.code}: ${error.message}`;
          continue;
        }
        fetchFirst(w);
      }
      if (dropped) emit();
    },
    current() {
      const certs = new Map<string, IdentityMaterial>();
      for (const [id, w] of workloads) if (w.material !== undefined) certs.set(id, w.material);
      return { certs, bundlePem: bundle.rootsPem };
    },
    onChange(listener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
    states() {
      const managed = new Map(rotation.status().map((s) => [s.name, s]));
      const fromManager = (spiffeId: string, name: string): IdentityState | undefined => {
        const s = managed.get(name);
        if (s === undefined) return undefined;
        const base = { spiffeId, serial: s.serial, notAfter: s.notAfter, nextRenewalAt: s.nextRenewalAt, failures: s.failures };
        return { ...base, ...(s.lastError === undefined ? {} : { lastError: s.lastError }), state: stateOf(true, s.failures) };
      };
      const node = fromManager(identity?.spiffeId ?? '', NODE) ?? { spiffeId: identity?.spiffeId ?? '', failures: 0, state: 'pending' };
      const list = [...workloads.values()]
        .sort((a, b) => (a.spiffeId < b.spiffeId ? -1 : a.spiffeId > b.spiffeId ? 1 : 0))
        .map(
          (w): IdentityState =>
            (w.material === undefined ? undefined : fromManager(w.spiffeId, w.spiffeId)) ?? {
              spiffeId: w.spiffeId,
              failures: w.failures,
              ...(w.retryAt === undefined ? {} : { nextRenewalAt: w.retryAt }),
              ...(w.lastError === undefined ? {} : { lastError: w.lastError }),
              state: stateOf(false, w.failures, w.lastError),
            },
        );
      return {
        node,
        workloads: list,
        bundle: {
          sequence: bundle.sequence,
          roots: bundle.rootsPem === '' ? 0 : fromPemAll(bundle.rootsPem).length,
          ...(bundle.updatedAt === undefined ? {} : { updatedAt: bundle.updatedAt }),
        },
        controlPlane: { address, ...cp },
      };
    },
    stop() {
      if (stopped) return;
      stopped = true;
      rotation.stop();
      for (const w of workloads.values()) w.retry?.cancel();
      watchRetry?.cancel();
      cancelWatch?.();
      cancelWatch = undefined;
      if (conn !== undefined) {
        conn.retired = true;
        release(conn);
      }
      conn = undefined;
    },
  };
}
