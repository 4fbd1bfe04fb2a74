/**
 * The identities' disk writes, one after another in the order asked: an older
 * bundle never overwrites a newer one, and a workload's files are removed only
 * after a save asked for before its drop. A failed write is logged as
 * "could not <what>" with the error (never the data) and does not stop the
 * writes after it.
 */
import { toMeshError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';

export type Persist = (what: string, write: () => Promise<void>) => Promise<void>;

export interface WriteQueue {
  /** Queues a write; the promise settles with it (it rejects if the write failed). */
  persist: Persist;
  /** Settles when every write queued so far has run. */
  idle(): Promise<void>;
}

export function createWriteQueue(log: Logger): WriteQueue {
  let tail: Promise<unknown> = Promise.resolve();
  return {
    persist(what, write) {
      const done = tail.then(write);
      tail = done.catch((err: unknown) => log.error(`could not ${what}`, { error: toMeshError(err) }));
      return done;
    },
    idle: async () => {
      await tail;
    },
  };
}
