/** The audit log: one row per join, issuance, renewal, revocation and rotation step, allowed or denied. */
import type { Db } from './db.js';

export interface AuditEntry {
  at: number;
  /** Who: `node:<name>`, `admin`, `token:<node>` or `peer:<address>`. */
  actor: string;
  action: string;
  spiffe_id?: string | null;
  serial?: string | null;
  /** `ok` or the error code. */
  result: string;
  detail?: string | null;
}

export interface AuditRow extends Required<AuditEntry> {
  id: number;
}

export class AuditRepo {
  private readonly insertStmt;

  constructor(private readonly db: Db) {
    this.insertStmt = db.prepare(
      'INSERT INTO audit (at, actor, action, spiffe_id, serial, result, detail) VALUES (@at, @actor, @action, @spiffe_id, @serial, @result, @detail)',
    );
  }

  insert(entry: AuditEntry): void {
    this.insertStmt.run({ spiffe_id: null, serial: null, detail: null, ...entry });
  }

  list(options: { limit?: number; sinceId?: number } = {}): AuditRow[] {
    return this.db
      .prepare('SELECT * FROM audit WHERE id > ? ORDER BY id DESC LIMIT ?')
      .all(options.sinceId ?? 0, options.limit ?? 1000)
      .reverse() as AuditRow[];
  }
}
