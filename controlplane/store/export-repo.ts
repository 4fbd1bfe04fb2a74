/** Intermediate CAs exported for another CA (Istio's plug-in CA): the record, never the key. */
import type { Db } from './db.js';

export interface ExportRow {
  id: number;
  /** `istio`: the only kind so far. */
  kind: string;
  /** The generation whose root signed it. */
  root_generation_id: number;
  serial: string;
  subject: string;
  cert_pem: string;
  not_before: number;
  not_after: number;
  created_at: number;
}

export class ExportRepo {
  constructor(private readonly db: Db) {}

  insert(row: Omit<ExportRow, 'id'>): number {
    const result = this.db
      .prepare(
        `INSERT INTO ca_exports (kind, root_generation_id, serial, subject, cert_pem, not_before, not_after, created_at)
         VALUES (@kind, @root_generation_id, @serial, @subject, @cert_pem, @not_before, @not_after, @created_at)`,
      )
      .run(row);
    return Number(result.lastInsertRowid);
  }

  /** The exports signed by this generation's root that have not expired at `now`. */
  unexpiredUnder(generationId: number, now: number): ExportRow[] {
    return this.db
      .prepare('SELECT * FROM ca_exports WHERE root_generation_id = ? AND not_after > ? ORDER BY id')
      .all(generationId, now) as ExportRow[];
  }

  all(): ExportRow[] {
    return this.db.prepare('SELECT * FROM ca_exports ORDER BY id').all() as ExportRow[];
  }
}
