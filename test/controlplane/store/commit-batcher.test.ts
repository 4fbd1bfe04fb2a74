import path from 'node:path';
import Database from 'better-sqlite3';
import t from 'tap';
import { CommitBatcher, walSync } from '../../../controlplane/store/commit-batcher.js';
import { tempDir } from '../../support/temp-dir.js';

function db() {
  const d = new Database(':memory:');
  d.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)');
  return d;
}

const insert =
  (d: Database.Database, id: number, v = 'x') =>
  () => {
    d.prepare('INSERT INTO t (id, v) VALUES (?, ?)').run(id, v);
  };
const count = (d: Database.Database) => (d.prepare('SELECT COUNT(*) AS n FROM t').get() as { n: number }).n;

t.test('writes in one tick share one transaction and resolve after it commits', async (t) => {
  const d = db();
  t.teardown(() => d.close());
  const batcher = new CommitBatcher(d);
  const seen: number[] = [];
  const writes = Array.from({ length: 10 }, (_, i) => batcher.run(insert(d, i)).then(() => seen.push(count(d))));
  t.equal(count(d), 0, 'nothing written synchronously');
  await Promise.all(writes);
  t.equal(batcher.batches, 1, 'one transaction');
  t.equal(count(d), 10);
  t.same(seen, Array(10).fill(10), 'every caller learns its result after the whole batch committed');

  await batcher.run(insert(d, 100));
  t.equal(batcher.batches, 2, 'a later write is a new batch');
  t.notOk(d.inTransaction);
});

t.test('a failing write rolls back alone; the others commit', async (t) => {
  const d = db();
  t.teardown(() => d.close());
  const batcher = new CommitBatcher(d);
  const results = await Promise.allSettled([
    batcher.run(insert(d, 1)),
    batcher.run(() => {
      insert(d, 2)();
      throw new Error('audit failed');
    }),
    batcher.run(insert(d, 1, 'duplicate')),
    batcher.run(insert(d, 3)),
  ]);
  t.same(
    results.map((r) => r.status),
    ['fulfilled', 'rejected', 'rejected', 'fulfilled'],
  );
  t.match((results[1] as PromiseRejectedResult).reason, { message: 'audit failed' });
  t.match((results[2] as PromiseRejectedResult).reason, { code: 'SQLITE_CONSTRAINT_PRIMARYKEY' });
  t.equal(batcher.batches, 1);
  t.same(
    d.prepare('SELECT id, v FROM t ORDER BY id').all(),
    [
      { id: 1, v: 'x' },
      { id: 3, v: 'x' },
    ],
    'the failing write left nothing behind, not even its first insert',
  );
});

t.test('more than 32 pending writes are split into batches of at most 32', async (t) => {
  const d = db();
  t.teardown(() => d.close());
  const batcher = new CommitBatcher(d);
  const sizes: number[] = [];
  let current = -1;
  let size = 0;
  const writes = Array.from({ length: 70 }, (_, i) =>
    batcher.run(() => {
      if (batcher.batches !== current) {
        if (current >= 0) sizes.push(size);
        current = batcher.batches;
        size = 0;
      }
      size++;
      insert(d, i)();
    }),
  );
  await Promise.all(writes);
  sizes.push(size);
  t.equal(batcher.batches, 3);
  t.same(sizes, [32, 32, 6]);
  t.equal(count(d), 70);

  const small = new CommitBatcher(d, { maxBatch: 4 });
  await Promise.all(Array.from({ length: 9 }, (_, i) => small.run(insert(d, 1000 + i))));
  t.equal(small.batches, 3, 'a custom batch size');
});

t.test('a failure of the group transaction itself rejects every write in it', async (t) => {
  const d = db();
  const batcher = new CommitBatcher(d);
  d.close();
  const results = await Promise.allSettled([batcher.run(() => {}), batcher.run(() => {})]);
  t.same(
    results.map((r) => r.status),
    ['rejected', 'rejected'],
  );
  t.equal(batcher.batches, 0);
});

/** A WAL sync the test completes by hand. */
function manualSync() {
  const waiting: Array<{ resolve: () => void; reject: (err: Error) => void }> = [];
  return {
    waiting,
    started: 0,
    closed: false,
    sync() {
      this.started++;
      return new Promise<void>((resolve, reject) => waiting.push({ resolve, reject }));
    },
    async close() {
      this.closed = true;
    },
  };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

t.test('a caller is settled only after a WAL sync that started after its batch committed', async (t) => {
  const d = db();
  t.teardown(() => d.close());
  const wal = manualSync();
  const batcher = new CommitBatcher(d, { sync: wal });
  const settled: string[] = [];
  const first = batcher.run(insert(d, 1)).then(() => settled.push('first'));
  await tick();
  t.equal(count(d), 1, 'committed');
  t.equal(wal.started, 1, 'the sync started after the commit');
  t.same(settled, [], 'not answered before the sync');

  // Two more batches commit while the first sync runs: they wait for the next sync, together.
  const second = batcher.run(insert(d, 2)).then(() => settled.push('second'));
  await tick();
  const third = batcher.run(insert(d, 3)).then(() => settled.push('third'));
  await tick();
  t.equal(batcher.batches, 3);
  t.equal(wal.started, 1, 'one sync at a time');
  wal.waiting.shift()?.resolve();
  await first;
  t.same(settled, ['first']);
  await tick();
  t.equal(wal.started, 2, 'the next sync covers both later batches');
  wal.waiting.shift()?.resolve();
  await Promise.all([second, third]);
  t.same(settled, ['first', 'second', 'third']);
  t.equal(batcher.syncs, 2);
  await batcher.close();
  t.ok(wal.closed, 'close() closes the WAL handle');
});

t.test('a failed WAL sync fails the writes it covered with MESH_E_STORE; later writes sync again', async (t) => {
  const d = db();
  t.teardown(() => d.close());
  const wal = manualSync();
  const batcher = new CommitBatcher(d, { sync: wal });
  const failed = batcher.run(insert(d, 1));
  await tick();
  wal.waiting.shift()?.reject(new Error('EIO: i/o error, fdatasync'));
  await t.rejects(failed, { code: 'MESH_E_STORE', message: /could not be made durable.*EIO/ });
  const later = batcher.run(insert(d, 2));
  await tick();
  wal.waiting.shift()?.resolve();
  await later;
  t.equal(batcher.syncs, 1);
});

t.test('on a WAL database file: batches commit with synchronous=NORMAL, the connection stays FULL, the WAL is synced', async (t) => {
  const dir = await tempDir(t, 'mesh-batcher-');
  const d = new Database(path.join(dir, 'x.db'));
  d.pragma('journal_mode = WAL');
  d.pragma('synchronous = FULL');
  d.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)');
  const batcher = new CommitBatcher(d);
  let during: unknown;
  await Promise.all([
    batcher.run(() => {
      during = d.pragma('synchronous', { simple: true });
      insert(d, 1)();
    }),
    batcher.run(insert(d, 2)),
  ]);
  t.equal(during, 1, 'NORMAL inside the batch');
  t.equal(d.pragma('synchronous', { simple: true }), 2, 'FULL again for every other transaction');
  t.equal(batcher.syncs, 1, 'one fdatasync of the WAL for the batch');
  t.equal(count(d), 2);
  await batcher.close();
  d.close();

  // The WAL handle is opened lazily: a batcher that never wrote has nothing to close.
  const d2 = new Database(path.join(dir, 'x.db'));
  await new CommitBatcher(d2).close();
  d2.close();
  // An in-memory database has no WAL: nothing to sync.
  const sync = walSync(db());
  await sync.sync();
  await sync.close();
});

t.test('onCommit is told of each group transaction and each WAL sync (metrics)', async (t) => {
  const d = db();
  t.teardown(() => d.close());
  const phases: string[] = [];
  let synced = 0;
  const batcher = new CommitBatcher(d, {
    sync: { sync: async () => void synced++, close: async () => {} },
    onCommit: (phase, ms) => {
      t.ok(ms >= 0, `${phase} took ${ms} ms`);
      phases.push(phase);
    },
  });
  await Promise.all([batcher.run(insert(d, 1)), batcher.run(insert(d, 2))]);
  t.same(phases, ['transaction', 'sync'], 'one transaction, one sync');
  t.equal(synced, 1);
});
