/**
 * The ca_exports table (migration 3) on a database from before it, and the
 * query `ca rotate retire` asks: the unexpired exports under a generation.
 */
import path from 'node:path';
import t from 'tap';
import { AuditRepo } from '../../../controlplane/store/audit-repo.js';
import { openDb, schemaVersion } from '../../../controlplane/store/db.js';
import { ExportRepo } from '../../../controlplane/store/export-repo.js';
import { MIGRATIONS } from '../../../controlplane/store/migrations.js';
import { tempDir } from '../../support/temp-dir.js';

t.test('migration 3 adds ca_exports to an existing database and keeps its rows', async (t) => {
  const file = path.join(await tempDir(t, 'mesh-exports-'), 'cp.db');
  const v2 = openDb(
    file,
    MIGRATIONS.filter((m) => m.version <= 2),
  );
  t.equal(schemaVersion(v2), 2);
  v2.prepare(
    "INSERT INTO ca_generations (id, state, source, root_pem, signer_pem, signer_key_file, created_at) VALUES (1, 'active', 'generated', 'r', 's', 'k', 1)",
  ).run();
  new AuditRepo(v2).insert({ at: 1, actor: 'controlplane', action: 'ca.init', result: 'ok' });
  v2.close();

  const db = openDb(file);
  t.teardown(() => db.close());
  t.ok(schemaVersion(db) >= 3, `migrated to ${schemaVersion(db)}`);
  t.equal(new AuditRepo(db).list().length, 1, 'audit kept');
  const repo = new ExportRepo(db);
  t.same(repo.all(), [], 'no exports yet');

  const row = { kind: 'istio', serial: 'AB', subject: 'CN=x', cert_pem: 'pem', not_before: 0, created_at: 0 };
  const expired = repo.insert({ ...row, root_generation_id: 1, not_after: 1_000 });
  const live = repo.insert({ ...row, root_generation_id: 1, not_after: 5_000 });
  t.same(
    repo.unexpiredUnder(1, 2_000).map((r) => r.id),
    [live],
    'only the export still valid at that time',
  );
  t.same(repo.unexpiredUnder(2, 0), [], 'none under another generation');
  t.same(
    repo.all().map((r) => r.id),
    [expired, live],
  );
  t.throws(() => repo.insert({ ...row, root_generation_id: 9, not_after: 1 }), /FOREIGN KEY/, 'only under a known generation');
});
