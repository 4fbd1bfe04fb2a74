/** Issued certificates: one row per certificate, serial unique per issuing generation. */
import type { Statement } from 'better-sqlite3';
import type { Db } from './db.js';

export interface CertRow {
  generation_id: number;
  serial: string;
  spiffe_id: string;
  node_name: string | null;
  kind: 'node' | 'workload' | 'server';
  not_before: number;
  not_after: number;
  issued_at: number;
}

export class CertRepo {
  private readonly insertStmt;

  constructor(private readonly db: Db) {
    this.insertStmt = db.prepare(
      `INSERT INTO certificates (generation_id, serial, spiffe_id, node_name, kind, not_before, not_after, issued_at)
       VALUES (@generation_id, @serial, @spiffe_id, @node_name, @kind, @not_before, @not_after, @issued_at)`,
    );
  }

  insert(row: CertRow): void {
    this.insertStmt.run(row);
  }

  /** Certificates of a generation still valid at `now` (what blocks retiring its root). */
  unexpiredCount(generationId: number, now: number): number {
    return (
      this.db.prepare('SELECT COUNT(*) AS n FROM certificates WHERE generation_id = ? AND not_after > ?').get(generationId, now) as {
        n: number;
      }
    ).n;
  }

  find(generationId: number, serial: string): CertRow | undefined {
    this.findStmt ??= this.db.prepare('SELECT * FROM certificates WHERE generation_id = ? AND serial = ?');
    return this.findStmt.get(generationId, serial) as CertRow | undefined;
  }

  private findStmt: Statement<unknown[]> | undefined;

  count(): number {
    return (this.db.prepare('SELECT COUNT(*) AS n FROM certificates').get() as { n: number }).n;
  }
}
