/**
 * Group commit: writes that arrive together share one transaction, so one
 * fsync (synchronous=FULL) covers many issuances. Each write runs in its own
 * savepoint, so one failing write (an audit insert that fails, a revoked node)
 * rolls back alone; every caller learns its result only after the commit.
 * Batches hold at most 32 writes: enough to amortize the fsync, small enough
 * that answers flow back during a burst instead of all at its end.
 */
import type { Db } from './db.js';

interface Pending {
  apply: () => void;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class CommitBatcher {
  private pending: Pending[] = [];
  private scheduled = false;
  batches = 0;

  constructor(
    private readonly db: Db,
    private readonly maxBatch = 32,
  ) {}

  /** Runs apply inside the next group transaction; resolves after that transaction commits. */
  run(apply: () => void): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({ apply, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    const batch = this.pending.splice(0, this.maxBatch);
    this.scheduled = this.pending.length > 0;
    if (this.scheduled) setImmediate(() => this.flush());
    const outcomes: Array<unknown> = [];
    try {
      this.db.transaction(() => {
        for (const item of batch) {
          try {
            this.db.transaction(item.apply)();
            outcomes.push(undefined);
          } catch (err) {
            outcomes.push(err ?? new Error('write failed'));
          }
        }
      })();
    } catch (err) {
      for (const item of batch) item.reject(err);
      return;
    }
    this.batches++;
    batch.forEach((item, i) => {
      const outcome = outcomes[i];
      if (outcome === undefined) item.resolve();
      else item.reject(outcome);
    });
  }
}
