import path from 'node:path';
import t, { type Test } from 'tap';
import { openDb } from '../../../controlplane/store/db.js';
import { NodeRepo, TOUCH_INTERVAL_MS } from '../../../controlplane/store/node-repo.js';
import { tempDir } from '../../support/temp-dir.js';

/** A fresh database with one active node, vm1. */
async function repoWithNode(t: Test) {
  const dir = await tempDir(t, 'mesh-noderepo-');
  const db = openDb(path.join(dir, 'cp.db'));
  t.teardown(() => db.close());
  const nodes = new NodeRepo(db);
  nodes.upsertNode({ name: 'vm1', spiffe_id: 'spiffe://td/mesh/node/vm1', allow: '[]', status: 'active', joined_at: 1 });
  return { db, nodes };
}

t.test('node rows: cached outside transactions, always read inside, dropped on every write', async (t) => {
  const { db, nodes } = await repoWithNode(t);
  const first = nodes.node('vm1');
  t.equal(first?.status, 'active');
  t.equal(nodes.node('vm1'), first, 'the second read outside a transaction is the cached row');

  // A write behind the repo's back is seen inside a transaction, where the decision is made.
  db.prepare("UPDATE nodes SET status = 'revoked' WHERE name = 'vm1'").run();
  t.equal(db.transaction(() => nodes.node('vm1')?.status)(), 'revoked', 'inside a transaction: the table');
  db.prepare("UPDATE nodes SET status = 'active' WHERE name = 'vm1'").run();

  t.ok(nodes.revoke('vm1', 5));
  t.equal(nodes.node('vm1')?.status, 'revoked', 'revoke drops the cached row');
  nodes.upsertNode({ name: 'vm1', spiffe_id: 'spiffe://td/mesh/node/vm1', allow: '["x"]', status: 'active', joined_at: 6 });
  t.match(nodes.node('vm1'), { status: 'active', allow: '["x"]', revoked_at: null }, 'a new join drops it too');

  // A row read inside a transaction that rolls back is never cached.
  try {
    db.transaction(() => {
      nodes.revoke('vm1', 7);
      t.equal(nodes.node('vm1')?.status, 'revoked');
      throw new Error('roll back');
    })();
  } catch {}
  t.equal(nodes.node('vm1')?.status, 'active', 'the rolled-back revocation is not remembered');
  t.equal(nodes.node('nobody'), undefined);
});

t.test('touch writes last_seen_at at most once per interval per node', async (t) => {
  const { nodes } = await repoWithNode(t);
  const seen = () => nodes.nodes()[0]?.last_seen_at;
  nodes.touch('vm1', 10_000);
  t.equal(seen(), 10_000);
  nodes.touch('vm1', 10_000 + TOUCH_INTERVAL_MS - 1);
  t.equal(seen(), 10_000, 'within the interval: not written');
  nodes.touch('vm1', 10_000 + TOUCH_INTERVAL_MS);
  t.equal(seen(), 10_000 + TOUCH_INTERVAL_MS, 'after it: written');
  nodes.touch('vm1', 5_000);
  t.equal(seen(), 5_000, 'a clock that went back writes at once');
});
