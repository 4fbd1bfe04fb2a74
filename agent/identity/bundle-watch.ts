/**
 * The trust bundle, followed with the control plane's WatchBundle stream.
 *
 * - reconnect() makes a new client with the current node SVID and bundle (see
 *   cp-connection.ts) and opens the watch on it. It is called at start, after
 *   a node renewal, after a bundle change and when the watch failed.
 * - A watch that fails or ends (the control plane restarted) is reopened with
 *   backoff, on a new client: gRPC's own reconnect backoff (up to 2 min) is
 *   not waited out. Status shows 'failing' with the last error meanwhile.
 * - A changed bundle is saved to disk (through `save`, in order with the
 *   other writes), the client reconnects trusting the new roots (for the
 *   control plane's own certificate too), and onChange fires.
 * - The first answer after a failure calls onRecovered: the control plane is
 *   back, so renewals that failed are retried at once instead of after their
 *   backoff.
 */
import { type BackoffPolicy, backoffDelay } from '../../lib/backoff.js';
import type { Clock, TimerHandle } from '../../lib/clock.js';
import { type MeshError, toMeshError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { fromPemAll } from '../../lib/x509/pem.js';
import type { BundleUpdate } from './cp-client.js';
import type { ControlPlaneConnection } from './cp-connection.js';
import type { BundleStatus, ControlPlaneStatus } from './identity-status.js';

export interface BundleWatchOptions {
  connection: ControlPlaneConnection;
  clock: Clock;
  log: Logger;
  backoff: BackoffPolicy;
  random?: () => number;
  /** The node credentials to connect with (they change when the node SVID is renewed). */
  node: () => { chainPem: string; keyPem: string };
  /** The bundle held at start (saved at join or at the last change). */
  rootsPem: string;
  /** Saves a changed bundle; failures are the saver's to log. */
  save: (rootsPem: string) => Promise<void>;
  onChange: () => void;
  onRecovered?: () => void;
}

export interface BundleWatch {
  /** New client, watch reopened; returns why no client could be made (a reconnect is then scheduled). */
  reconnect(): MeshError | undefined;
  rootsPem(): string;
  status(): { bundle: BundleStatus; controlPlane: Omit<ControlPlaneStatus, 'address'> };
  stop(): void;
}

export function createBundleWatch(options: BundleWatchOptions): BundleWatch {
  const { connection, clock, log, backoff } = options;
  const random = options.random ?? Math.random;
  let bundle: { rootsPem: string; sequence: number; updatedAt?: number } = { rootsPem: options.rootsPem, sequence: 0 };
  let cp: Omit<ControlPlaneStatus, 'address'> = { state: 'connecting' };
  let cancelWatch: (() => void) | undefined;
  let retry: TimerHandle | undefined;
  let failures = 0;
  let stopped = false;

  const closeWatch = () => {
    cancelWatch?.();
    cancelWatch = undefined;
  };

  const failed = (err: MeshError) => {
    closeWatch();
    retry?.cancel();
    failures += 1;
    cp = { state: 'failing', lastError: `${err.code}: ${err.message}` };
    const delay = backoffDelay(backoff, failures - 1, random);
    log.warn('bundle watch failed; reopening', { address: connection.address, failures, retryInMs: delay, error: err });
    retry = clock.setTimer(delay, () => {
      retry = undefined;
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
    void options.save(update.rootsPem).catch(() => {});
    reconnect();
    options.onChange();
  };

  const open = () => {
    retry?.cancel();
    retry = undefined;
    const client = connection.client();
    if (stopped || client === undefined) return;
    const current = () => connection.client() === client && !stopped;
    try {
      cancelWatch = client.watchBundle(
        (update) => {
          if (!current()) return;
          const recovered = cp.state === 'failing';
          failures = 0;
          if (cp.state !== 'connected') log.info('bundle watch connected', { address: connection.address, sequence: update.sequence });
          cp = { state: 'connected' };
          applyBundle(update);
          if (recovered) options.onRecovered?.();
        },
        (err) => {
          if (current()) failed(err);
        },
      );
    } catch (err) {
      failed(toMeshError(err));
    }
  };

  const reconnect = (): MeshError | undefined => {
    if (stopped) return undefined;
    closeWatch();
    try {
      connection.replace({ node: options.node(), bundlePem: bundle.rootsPem });
    } catch (err) {
      const error = toMeshError(err, 'MESH_E_CERT_INVALID');
      failed(error);
      return error;
    }
    if (cp.state === 'connected') cp = { state: 'connecting' };
    open();
    return undefined;
  };

  return {
    reconnect,
    rootsPem: () => bundle.rootsPem,
    status: () => ({
      bundle: {
        sequence: bundle.sequence,
        roots: bundle.rootsPem === '' ? 0 : fromPemAll(bundle.rootsPem).length,
        ...(bundle.updatedAt === undefined ? {} : { updatedAt: bundle.updatedAt }),
      },
      controlPlane: cp,
    }),
    stop() {
      stopped = true;
      retry?.cancel();
      retry = undefined;
      closeWatch();
    },
  };
}
