/**
 * One list-and-watch of a Kubernetes resource (the client's informer: a local
 * cache; the watch resumes from the last resourceVersion, a `410 Gone`
 * relists). The informer stops on any other error (API server down, refused
 * list): this wrapper starts it again with backoff, so a restarted API server
 * is picked up where the watch left off. `synced()` turns true once the first
 * list is in the cache: before it, an empty cache means "not known yet", not
 * "nothing exists", and the sync must not delete on it.
 */
import type { KubernetesListObject, KubernetesObject } from '@kubernetes/client-node';
import { type BackoffPolicy, backoffDelay } from '../../lib/backoff.js';
import type { Clock, TimerHandle } from '../../lib/clock.js';
import type { Logger } from '../../lib/logger.js';
import type { KubeConnection } from './kube-client.js';

export interface KubeWatch<T> {
  /** Every object in the cache. */
  list(): readonly T[];
  synced(): boolean;
  /** Lists made (the first one and every relist after an error or a 410). */
  lists(): number;
  stop(): Promise<void>;
}

export interface KubeWatchOptions<T extends KubernetesObject> {
  readonly conn: KubeConnection;
  /** API path of the collection, e.g. /api/v1/services. */
  readonly path: string;
  readonly list: () => Promise<KubernetesListObject<T>>;
  readonly labelSelector?: string;
  /** Any add, update, delete or relist. */
  readonly onChange: () => void;
  /** A list or watch failed; the watch starts again after a backoff. */
  readonly onError: (err: Error) => void;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly backoff?: BackoffPolicy;
}

const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 200, maxMs: 5_000 };

export function startKubeWatch<T extends KubernetesObject>(o: KubeWatchOptions<T>): KubeWatch<T> {
  let synced = false;
  let lists = 0;
  let attempt = 0;
  let stopped = false;
  let timer: TimerHandle | undefined;
  const listed = async () => {
    const answer = await o.list();
    lists += 1;
    attempt = 0;
    synced = true;
    // The informer fills its cache right after this resolves; the change handler runs after that (it debounces).
    queueMicrotask(o.onChange);
    return answer;
  };
  const informer = o.conn.k8s.makeInformer<T>(o.conn.kc, o.path, listed, o.labelSelector);
  const changed = () => {
    attempt = 0;
    o.onChange();
  };
  informer.on('add', changed);
  informer.on('update', changed);
  informer.on('delete', changed);
  informer.on('error', (err: unknown) => {
    if (stopped) return;
    const error = err instanceof Error ? err : new Error(String((err as { message?: string })?.message ?? err));
    o.onError(error);
    const delay = backoffDelay(o.backoff ?? DEFAULT_BACKOFF, attempt);
    attempt += 1;
    o.logger.debug('watch failed; starting again', { path: o.path, delayMs: delay, error: error.message });
    timer = o.clock.setTimer(delay, () => {
      timer = undefined;
      if (!stopped) void informer.start().catch((e: unknown) => o.onError(e as Error));
    });
  });
  void informer.start().catch((e: unknown) => o.onError(e as Error));
  return {
    list: () => informer.list(),
    synced: () => synced,
    lists: () => lists,
    async stop() {
      stopped = true;
      timer?.cancel();
      await informer.stop();
    },
  };
}
