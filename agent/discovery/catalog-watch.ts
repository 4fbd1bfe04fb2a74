/**
 * One blocking-query loop per watched upstream service; results are coalesced
 * into an immutable CatalogView, at most one view per `coalesceMs`: the first
 * change after a quiet window is published at once (in a microtask, so the
 * changes of one synchronous run make one view), the changes that follow it
 * within the window make one view at the window's end. A lone health flip so
 * reaches the data plane without waiting, and a burst (an agent start, a
 * deploy) still costs one rebuild per window. While Consul is unreachable a
 * service keeps its last known instances (from the previous answer or from
 * disk). setServices starts and
 * stops loops; a stopped loop's query is aborted, so nothing leaks.
 */

import { type BackoffPolicy, backoffDelay } from '../../lib/backoff.js';
import type { Clock, TimerHandle } from '../../lib/clock.js';
import { toMeshError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { type CatalogView, makeView, type ServiceView, sameInstances, toInstances } from './catalog-view.js';
import type { ConsulClient } from './consul-client.js';

export interface CatalogWatcherOptions {
  client: ConsulClient;
  clock: Clock;
  log: Logger;
  backoff: BackoffPolicy;
  waitMs: number;
  coalesceMs: number;
  /** Last known services (from disk), shown until Consul answers. */
  initial?: readonly ServiceView[];
  random?: () => number;
  /** Each blocking query's end (metrics): how long it took and whether it brought a change, nothing new, or failed. */
  onAnswer?: (service: string, ms: number, outcome: WatchOutcome) => void;
}

export type WatchOutcome = 'changed' | 'unchanged' | 'error';

export interface WatchState {
  readonly service: string;
  readonly index: number;
  readonly healthy: boolean;
  readonly error?: string;
}

export interface CatalogWatcher {
  setServices(names: readonly string[]): void;
  view(): CatalogView;
  /** Calls listener with each new view; returns the unsubscribe function. */
  onView(listener: (view: CatalogView) => void): () => void;
  watches(): readonly WatchState[];
  stop(): void;
}

interface Loop {
  service: string;
  abort: AbortController;
  index: number;
  error: string | undefined;
  sleep: TimerHandle | undefined;
  wake: (() => void) | undefined;
}

export function createCatalogWatcher(options: CatalogWatcherOptions): CatalogWatcher {
  const { client, clock, log } = options;
  const loops = new Map<string, Loop>();
  const known = new Map<string, ServiceView>((options.initial ?? []).map((s) => [s.name, s]));
  const listeners = new Set<(view: CatalogView) => void>();
  let current: CatalogView = makeView(0, []);
  let publishTimer: TimerHandle | undefined;
  /** A leading-edge publish is queued as a microtask. */
  let publishQueued = false;
  /** When the last view was published (clock time); undefined before the first. */
  let publishedAt: number | undefined;
  let stopped = false;

  const publish = () => {
    publishTimer = undefined;
    publishQueued = false;
    if (stopped) return;
    publishedAt = clock.now();
    const services = [...known.values()].filter((s) => loops.has(s.name));
    current = makeView(current.version + 1, services);
    for (const listener of listeners) listener(current);
  };
  const changed = () => {
    if (publishTimer !== undefined || publishQueued) return;
    const wait = publishedAt === undefined ? 0 : publishedAt + options.coalesceMs - clock.now();
    if (wait > 0) publishTimer = clock.setTimer(wait, publish);
    else {
      publishQueued = true;
      queueMicrotask(publish);
    }
  };

  const sleep = (loop: Loop, ms: number) =>
    new Promise<void>((resolve) => {
      loop.wake = resolve;
      loop.sleep = clock.setTimer(ms, resolve);
    });

  /**
   * One blocking query and what its answer changes; false when the loop was
   * stopped meanwhile. A function of its own, not inline in runLoop: a
   * suspended async function keeps what its registers last held, so runLoop,
   * waiting on its next query, would keep its previous answer alive (with 200
   * upstreams, 2,000 health entries with their tags, meta and checks).
   */
  const ask = async (loop: Loop, asked: number, resumed: boolean): Promise<boolean> => {
    const result = await client.healthService(loop.service, { index: loop.index, waitMs: options.waitMs, signal: loop.abort.signal });
    if (loop.abort.signal.aborted) return false;
    if (resumed) log.info('catalog watch resumed', { service: loop.service });
    loop.error = undefined;
    // The answer is fresh, so block on its index next even when it went backwards (a restarted Consul).
    loop.index = Math.max(1, result.index);
    const instances = toInstances(result.entries);
    const before = known.get(loop.service);
    if (before === undefined || before.source !== 'consul' || !sameInstances(before.instances, instances)) {
      known.set(loop.service, { name: loop.service, instances, source: 'consul' });
      changed();
      options.onAnswer?.(loop.service, clock.now() - asked, 'changed');
    } else options.onAnswer?.(loop.service, clock.now() - asked, 'unchanged');
    return true;
  };

  const runLoop = async (loop: Loop) => {
    let failures = 0;
    while (!loop.abort.signal.aborted) {
      const asked = clock.now();
      try {
        if (!(await ask(loop, asked, failures > 0 || loop.error !== undefined))) return;
        failures = 0;
      } catch (err) {
        if (loop.abort.signal.aborted) return;
        options.onAnswer?.(loop.service, clock.now() - asked, 'error');
        const e = toMeshError(err);
        if (loop.error === undefined)
          log.warn('catalog watch failing; keeping the last known instances', { service: loop.service, error: e });
        loop.error = e.message;
        loop.index = 0;
        await sleep(loop, backoffDelay(options.backoff, failures++, options.random));
      }
    }
  };

  const stopLoop = (loop: Loop) => {
    loop.abort.abort();
    loop.sleep?.cancel();
    loop.wake?.();
    loops.delete(loop.service);
  };

  return {
    setServices(names) {
      const wanted = new Set(names);
      let removed = false;
      for (const loop of [...loops.values()]) {
        if (wanted.has(loop.service)) continue;
        stopLoop(loop);
        known.delete(loop.service);
        removed = true;
      }
      for (const service of wanted) {
        if (loops.has(service)) continue;
        const loop: Loop = { service, abort: new AbortController(), index: 0, error: undefined, sleep: undefined, wake: undefined };
        loops.set(service, loop);
        if (known.has(service)) removed = true; // the last known instances join the view at once
        void runLoop(loop);
      }
      if (removed) changed();
    },
    view: () => current,
    onView(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    watches: () =>
      [...loops.values()].map((l) => ({
        service: l.service,
        index: l.index,
        healthy: l.error === undefined && l.index > 0,
        ...(l.error === undefined ? {} : { error: l.error }),
      })),
    stop() {
      stopped = true;
      publishTimer?.cancel();
      publishTimer = undefined;
      for (const loop of [...loops.values()]) stopLoop(loop);
      listeners.clear();
    },
  };
}
