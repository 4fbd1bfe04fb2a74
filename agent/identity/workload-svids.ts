/**
 * The SVIDs of the local workloads. setWanted() names their SPIFFE IDs.
 *
 * - Each is obtained with a new P-256 key made on this host; only the CSR
 *   travels (enroll.ts). A failed first fetch is retried with backoff; once
 *   held, this module's rotation manager renews it (new key too).
 * - Every SVID obtained or renewed is saved with its key in the agent's state
 *   folder (workload-svid-store.ts), after it is served.
 * - At start, adopt() hands over the stored SVIDs that are still valid: a
 *   wanted one is served at once, marked source 'disk', and handed to the
 *   rotation manager, which renews it at once if its renewal time has passed
 *   and at the usual time otherwise. It stays 'disk' until that renewal.
 * - A dropped ID is forgotten and its files are removed; a late answer for it
 *   is thrown away. The first setWanted after adopt() (or adopt() itself, if
 *   the wanted IDs are already known) also removes the stored folders of IDs
 *   not wanted, and the rejected ones. stop() removes nothing.
 *
 * onChange hears of every SVID adopted, obtained, renewed or dropped. No key
 * or PEM is logged.
 */
import type { BackoffPolicy } from '../../lib/backoff.js';
import type { Clock, TimerHandle } from '../../lib/clock.js';
import { toMeshError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { parseSpiffeId } from '../../lib/spiffe-id.js';
import type { IdentityMaterial } from '../model/proxy-model.js';
import type { Svid } from './cp-client.js';
import { heldState, type IdentityState, type SvidSource, stateOf } from './identity-status.js';
import { createRotationManager, type IssuedCert, leafTimes, type RotationManagerOptions, retryDelay } from './rotation-manager.js';
import type { StoredSvid } from './svid-check.js';
import type { WorkloadSvidStore } from './workload-svid-store.js';
import type { Persist } from './write-queue.js';

export interface WorkloadSvidsOptions {
  clock: Clock;
  log: Logger;
  rotation: RotationManagerOptions;
  /** Backoff of first fetches. */
  backoff: BackoffPolicy;
  random?: () => number;
  /** A new SVID for a new key, from the control plane (requestWorkloadSvid). */
  obtain: (spiffeId: string) => Promise<{ svid: Svid; keyPem: string }>;
  store: WorkloadSvidStore;
  persist: Persist;
  onChange: () => void;
}

export interface WorkloadSvids {
  setWanted(spiffeIds: readonly string[]): void;
  /** The valid SVIDs found on disk at start (before any control-plane call). */
  adopt(stored: readonly StoredSvid[]): void;
  /** Fetches may start (the connection exists). */
  enable(): void;
  /** The control plane answers again: failed fetches and renewals are tried at once. */
  retryFailed(): void;
  current(): Map<string, IdentityMaterial>;
  states(): IdentityState[];
  stop(): void;
}

interface Issued extends IssuedCert {
  readonly material: IdentityMaterial;
}

interface Workload {
  readonly spiffeId: string;
  material: IdentityMaterial | undefined;
  source: SvidSource;
  failures: number;
  lastError: string | undefined;
  retryAt: number | undefined;
  retry: TimerHandle | undefined;
  fetching: boolean;
}

export function createWorkloadSvids(options: WorkloadSvidsOptions): WorkloadSvids {
  const { clock, log, backoff, persist } = options;
  const random = options.random ?? Math.random;
  const rotation = createRotationManager<Issued>(options.rotation);
  const workloads = new Map<string, Workload>();
  /** Stored SVIDs not yet matched with the wanted IDs (adopt() until the next setWanted). */
  let stored: Map<string, StoredSvid> | undefined;
  let wantedKnown = false;
  let enabled = false;
  let stopped = false;

  const live = (w: Workload) => !stopped && workloads.get(w.spiffeId) === w;

  const save = (spiffeId: string, material: IdentityMaterial) =>
    void persist(`save the SVID of ${spiffeId}`, () => options.store.save(spiffeId, material)).catch(() => {});

  const obtain = async (spiffeId: string): Promise<Issued> => {
    const { svid, keyPem } = await options.obtain(spiffeId);
    return { ...leafTimes(svid.chainPem, svid.serial), material: { chainPem: svid.chainPem, keyPem } };
  };

  const hold = (w: Workload, cert: Issued, source: SvidSource) => {
    w.material = cert.material;
    w.source = source;
    w.failures = 0;
    w.lastError = undefined;
    w.retry?.cancel();
    w.retry = undefined;
    w.retryAt = undefined;
    rotation.add(w.spiffeId, cert, () => obtain(w.spiffeId));
  };

  const fetchFirst = (w: Workload) => {
    if (!live(w) || w.fetching || w.material !== undefined || !enabled) return;
    w.fetching = true;
    w.retry?.cancel();
    w.retry = undefined;
    w.retryAt = undefined;
    obtain(w.spiffeId).then(
      (cert) => {
        w.fetching = false;
        if (!live(w)) return;
        log.info('workload SVID obtained', { spiffeId: w.spiffeId, serial: cert.serial, notAfter: new Date(cert.notAfter).toISOString() });
        hold(w, cert, 'control-plane');
        save(w.spiffeId, cert.material);
        options.onChange();
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
    const w = workloads.get(name);
    if (w === undefined || stopped) return;
    w.material = cert.material;
    w.source = 'control-plane';
    save(name, cert.material);
    options.onChange();
  });

  /** Serves the stored SVIDs of wanted IDs not held yet; removes the other stored folders. Returns whether any was served. */
  const reconcile = (): boolean => {
    if (stored === undefined) return false;
    let served = false;
    for (const w of workloads.values()) {
      const svid = stored.get(w.spiffeId);
      if (svid === undefined || w.material !== undefined || w.fetching) continue;
      const { chainPem, keyPem, serial, notBefore, notAfter } = svid;
      hold(w, { serial, notBefore, notAfter, material: { chainPem, keyPem } }, 'disk');
      log.info('workload SVID loaded from disk', { spiffeId: w.spiffeId, serial, notAfter: new Date(notAfter).toISOString() });
      served = true;
    }
    stored = undefined;
    const keep = [...workloads.keys()];
    void persist('remove the stored SVIDs of workloads no longer wanted', async () => {
      const removed = await options.store.prune(keep);
      if (removed.length > 0) log.info('stored SVIDs of workloads no longer wanted removed', { folders: removed });
    }).catch(() => {});
    return served;
  };

  return {
    setWanted(spiffeIds) {
      if (stopped) return;
      wantedKnown = true;
      const wanted = new Set(spiffeIds);
      let changed = false;
      for (const [id, w] of workloads) {
        if (wanted.has(id)) continue;
        workloads.delete(id);
        w.retry?.cancel();
        rotation.remove(id);
        if (w.material !== undefined) changed = true;
        log.info('workload SVID dropped', { spiffeId: id });
        void persist(`remove the stored SVID of ${id}`, () => options.store.remove(id)).catch(() => {});
      }
      const added: Workload[] = [];
      for (const id of wanted) {
        if (workloads.has(id)) continue;
        const w: Workload = {
          spiffeId: id,
          material: undefined,
          source: 'control-plane',
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
        added.push(w);
      }
      if (reconcile()) changed = true;
      for (const w of added) fetchFirst(w);
      if (changed) options.onChange();
    },
    adopt(svids) {
      if (stopped) return;
      stored = new Map(svids.map((s) => [s.spiffeId, s]));
      if (wantedKnown && reconcile()) options.onChange();
    },
    enable() {
      enabled = true;
      for (const w of workloads.values()) fetchFirst(w);
    },
    retryFailed() {
      rotation.retryFailed();
      for (const w of workloads.values()) if (w.retry !== undefined) fetchFirst(w);
    },
    current() {
      const certs = new Map<string, IdentityMaterial>();
      for (const [id, w] of workloads) if (w.material !== undefined) certs.set(id, w.material);
      return certs;
    },
    states() {
      const managed = new Map(rotation.status().map((s) => [s.name, s]));
      return [...workloads.values()]
        .sort((a, b) => (a.spiffeId < b.spiffeId ? -1 : a.spiffeId > b.spiffeId ? 1 : 0))
        .map((w): IdentityState => {
          const m = w.material === undefined ? undefined : managed.get(w.spiffeId);
          if (m !== undefined) return heldState(w.spiffeId, m, w.source);
          return {
            spiffeId: w.spiffeId,
            failures: w.failures,
            ...(w.retryAt === undefined ? {} : { nextRenewalAt: w.retryAt }),
            ...(w.lastError === undefined ? {} : { lastError: w.lastError }),
            state: stateOf(false, w.failures, w.lastError),
          };
        });
    },
    stop() {
      if (stopped) return;
      stopped = true;
      rotation.stop();
      for (const w of workloads.values()) w.retry?.cancel();
    },
  };
}
