/**
 * The control plane's SQLite database: WAL with synchronous=FULL (a certificate
 * is returned only after its row is durable; issuances go through the
 * CommitBatcher, which commits with NORMAL and syncs the WAL itself before
 * answering, off the event loop), foreign keys on, an integrity
 * check at open (refuse to start on failure), numbered migrations, and an
 * online backup through SQLite's backup API.
 */
import Database from 'better-sqlite3';
import { MeshError } from '../../lib/errors.js';
import { MIGRATIONS, type Migration } from './migrations.js';

export type Db = Database.Database;

export function openDb(file: string, migrations: readonly Migration[] = MIGRATIONS): Db {
  let db: Db;
  try {
    db = new Database(file);
  } catch (err) {
    throw new MeshError('MESH_E_STORE', `cannot open the database ${file}: ${(err as Error).message}`, { cause: err, details: { file } });
  }
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 5000');
    const check = db.pragma('integrity_check') as Array<{ integrity_check: string }>;
    const problems = check.map((row) => row.integrity_check).filter((text) => text !== 'ok');
    if (problems.length > 0) {
      throw new MeshError(
        'MESH_E_STORE_CORRUPT',
        `the database ${file} failed its integrity check: ${problems.slice(0, 5).join('; ')}. ` +
          'Stop, restore the latest backup (meshctl backup) into place, and start again.',
        { details: { file, problems: problems.slice(0, 20) } },
      );
    }
    migrate(db, migrations);
  } catch (err) {
    db.close();
    if (err instanceof MeshError) throw err;
    throw new MeshError(
      'MESH_E_STORE_CORRUPT',
      `the database ${file} cannot be used: ${(err as Error).message}. ` +
        'Stop, restore the latest backup (meshctl backup) into place, and start again.',
      {
        cause: err,
        details: { file },
      },
    );
  }
  return db;
}

export function migrate(db: Db, migrations: readonly Migration[]): number {
  db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)');
  const applied = new Set((db.prepare('SELECT version FROM schema_migrations').all() as Array<{ version: number }>).map((r) => r.version));
  let count = 0;
  for (const migration of [...migrations].sort((a, b) => a.version - b.version)) {
    if (applied.has(migration.version)) continue;
    db.transaction(() => {
      db.exec(migration.sql);
      db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(
        migration.version,
        migration.name,
        Date.now(),
      );
    })();
    count++;
  }
  return count;
}

export function schemaVersion(db: Db): number {
  const row = db.prepare('SELECT MAX(version) AS v FROM schema_migrations').get() as { v: number | null };
  return row.v ?? 0;
}

/** Online backup to a new file, consistent while the control plane keeps writing. */
export async function backupDb(db: Db, destination: string): Promise<{ pages: number }> {
  let pages = 0;
  await db.backup(destination, {
    progress: (info) => {
      pages = info.totalPages;
      return 100;
    },
  });
  return { pages };
}
