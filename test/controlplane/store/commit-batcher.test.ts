import Database from 'better-sqlite3';
import t from 'tap';
import { CommitBatcher } from '../../../controlplane/store/commit-batcher.js';

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

  const small = new CommitBatcher(d, 4);
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
