/**
 * The agent's PolicySource: the control plane's Policy.Watch stream over the
 * agent's own mTLS connection (the node SVID and bundle of cp-connection.ts),
 * with the last set received kept on disk (policy-cache.ts).
 *
 * - start() loads <dataDir>/policy/policy.json (origin 'disk'; a damaged file
 *   is logged and ignored) and opens the watch when a client exists; it never
 *   waits for the control plane.
 * - The watch sends the revision held and the interest (services and SPIFFE
 *   IDs of the node's workloads); revision 0 when the held set was filtered
 *   for another interest. setInterest() with a new interest re-subscribes.
 * - Each update is the whole set: it replaces the held one (origin
 *   'controlplane'), is logged, saved (atomically, 0600, newest wins) and
 *   announced to onChange listeners.
 * - A watch that fails or ends is reopened with backoff; a new client (node
 *   renewal, bundle change, reconnect) reopens it at once.
 */
import { type BackoffPolicy, backoffDelay } from '../../lib/backoff.js';
import type { Clock, TimerHandle } from '../../lib/clock.js';
import { type MeshError, toMeshError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import type { PolicySet } from '../../lib/policy/schema.js';
import type { ControlPlaneLink } from '../identity/cp-connection.js';
import { type CachedPolicy, loadPolicyCache, policyCachePath, savePolicyCache } from './policy-cache.js';
import { EMPTY_POLICY_SET, type PolicyOrigin, type PolicySource, type PolicySourceStatus } from './policy-source.js';

export interface CpPolicySourceOptions {
  link: ControlPlaneLink;
  dataDir: string;
  clock: Clock;
  log: Logger;
  /** Reopening a failed watch; default 500 ms doubling to 30 s, with jitter. */
  backoff?: BackoffPolicy;
  random?: () => number;
}

export interface CpPolicySource extends PolicySource {
  status(): PolicySourceStatus;
}

type Interest = { services: readonly string[]; spiffeIds: readonly string[] };

export const DEFAULT_POLICY_BACKOFF: BackoffPolicy = { initialMs: 500, maxMs: 30_000 };

const normalize = (i: Interest): Interest => ({
  services: [...new Set(i.services)].sort(),
  spiffeIds: [...new Set(i.spiffeIds)].sort(),
});
const sameInterest = (a: Interest | undefined, b: Interest) =>
  a !== undefined && a.services.join('\n') === b.services.join('\n') && a.spiffeIds.join('\n') === b.spiffeIds.join('\n');

export function createCpPolicySource(options: CpPolicySourceOptions): CpPolicySource {
  const { link, clock } = options;
  const log = options.log.child({ component: 'policy' });
  const backoff = options.backoff ?? DEFAULT_POLICY_BACKOFF;
  const random = options.random ?? Math.random;
  const file = policyCachePath(options.dataDir);
  const listeners = new Set<() => void>();
  let set: PolicySet = EMPTY_POLICY_SET;
  let origin: PolicyOrigin = 'none';
  let receivedAt: number | undefined;
  /** The interest `set` was filtered for. */
  let heldFor: Interest | undefined;
  let interest: Interest = { services: [], spiffeIds: [] };
  let connected = false;
  let lastError: string | undefined;
  let failures = 0;
  let cancel: (() => void) | undefined;
  let retry: TimerHandle | undefined;
  let offClient: (() => void) | undefined;
  let started = false;
  let stopped = false;
  let saving: Promise<void> = Promise.resolve();
  let toSave: CachedPolicy | undefined;

  const emit = () => {
    for (const listener of [...listeners]) {
      try {
        listener();
      } catch (err) {
        log.error('a policy change listener failed', { error: toMeshError(err) });
      }
    }
  };

  /** Writes the newest set; a write asked for while one runs is folded into the next. */
  const save = (cached: CachedPolicy) => {
    const first = toSave === undefined;
    toSave = cached;
    if (!first) return;
    saving = saving.then(async () => {
      const next = toSave;
      toSave = undefined;
      if (next === undefined) return;
      try {
        await savePolicyCache(file, next);
      } catch (err) {
        log.error('the policy set could not be saved; a restart without the control plane would miss it', {
          file,
          revision: next.set.revision,
          error: toMeshError(err),
        });
      }
    });
  };

  const closeWatch = () => {
    cancel?.();
    cancel = undefined;
    connected = false;
  };

  const failed = (err: MeshError) => {
    closeWatch();
    retry?.cancel();
    failures += 1;
    lastError = `${err.code}: ${err.message}`;
    const delay = backoffDelay(backoff, failures - 1, random);
    log.warn('policy watch failed; reopening', { failures, retryInMs: delay, error: err });
    retry = clock.setTimer(delay, () => {
      retry = undefined;
      open();
    });
  };

  const open = () => {
    retry?.cancel();
    retry = undefined;
    closeWatch();
    const client = link.client();
    if (stopped || !started || client === undefined) return;
    const asked = interest;
    const revision = sameInterest(heldFor, asked) ? set.revision : 0;
    let mine = true;
    const current = () => mine && !stopped;
    try {
      const cancelStream = client.watchPolicy(
        { revision, services: asked.services, spiffeIds: asked.spiffeIds },
        {
          onOpen: () => {
            if (!current()) return;
            connected = true;
            failures = 0;
            lastError = undefined;
            log.debug('policy watch open', { revision, services: asked.services.length, spiffeIds: asked.spiffeIds.length });
          },
          onUpdate: (update) => {
            if (!current()) return;
            connected = true;
            failures = 0;
            lastError = undefined;
            const previous = set.revision;
            set = update;
            origin = 'controlplane';
            heldFor = asked;
            receivedAt = clock.now();
            log.info('policy revision received', { revision: update.revision, previous, resources: update.resources.length });
            save({ set: update, interest: asked, receivedAt });
            emit();
          },
          onError: (err) => {
            if (current()) failed(err);
          },
        },
      );
      cancel = () => {
        mine = false;
        cancelStream();
      };
    } catch (err) {
      failed(toMeshError(err));
    }
  };

  const loadDisk = async () => {
    try {
      const cached = await loadPolicyCache(file);
      if (cached === undefined || stopped) return;
      set = cached.set;
      heldFor = normalize(cached.interest);
      receivedAt = cached.receivedAt;
      origin = 'disk';
      log.info('policy loaded from disk', { file, revision: set.revision, resources: set.resources.length });
      emit();
    } catch (err) {
      log.warn('the policy kept on disk is ignored; waiting for the control plane', { file, error: toMeshError(err) });
    }
  };

  return {
    current: () => set,
    origin: () => origin,
    setInterest(next) {
      const wanted = normalize(next);
      if (sameInterest(interest, wanted)) return;
      interest = wanted;
      if (started && !stopped) open();
    },
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async start() {
      if (started || stopped) return;
      await loadDisk();
      if (stopped) return;
      started = true;
      offClient = link.onClient(open);
      open();
    },
    async stop() {
      stopped = true;
      retry?.cancel();
      retry = undefined;
      offClient?.();
      closeWatch();
      await saving;
    },
    status: () => ({
      revision: set.revision,
      origin,
      connected,
      ...(lastError === undefined ? {} : { lastError }),
      ...(receivedAt === undefined ? {} : { receivedAt }),
    }),
  };
}
