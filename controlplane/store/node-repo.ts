/** Join tokens (stored hashed) and node identities. */
import type { Statement } from 'better-sqlite3';
import type { Db } from './db.js';

export interface NodeRow {
  name: string;
  spiffe_id: string;
  allow: string;
  status: 'active' | 'revoked';
  joined_at: number;
  revoked_at: number | null;
  last_seen_at: number | null;
}

export interface TokenRow {
  hash: string;
  node_name: string;
  allow: string;
  created_at: number;
  expires_at: number;
  used_at: number | null;
}

export class NodeRepo {
  private readonly statements = new Map<string, Statement<unknown[]>>();

  constructor(private readonly db: Db) {}

  /** Statements are prepared once: preparing per call was 4% of an issuance. */
  private stmt(sql: string): Statement<unknown[]> {
    let statement = this.statements.get(sql);
    if (statement === undefined) {
      statement = this.db.prepare(sql);
      this.statements.set(sql, statement);
    }
    return statement;
  }

  insertToken(row: Omit<TokenRow, 'used_at'>): void {
    this.stmt(
      'INSERT INTO join_tokens (hash, node_name, allow, created_at, expires_at) VALUES (@hash, @node_name, @allow, @created_at, @expires_at)',
    ).run(row);
  }

  /** The one atomic statement that consumes a token: true only for the single caller that changed the row. */
  consumeToken(hash: string, now: number): boolean {
    const result = this.stmt('UPDATE join_tokens SET used_at = ? WHERE hash = ? AND used_at IS NULL AND expires_at > ?').run(
      now,
      hash,
      now,
    );
    return result.changes === 1;
  }

  token(hash: string): TokenRow | undefined {
    return this.stmt('SELECT * FROM join_tokens WHERE hash = ?').get(hash) as TokenRow | undefined;
  }

  upsertNode(row: Omit<NodeRow, 'revoked_at' | 'last_seen_at'>): void {
    this.stmt(
      `INSERT INTO nodes (name, spiffe_id, allow, status, joined_at) VALUES (@name, @spiffe_id, @allow, @status, @joined_at)
         ON CONFLICT(name) DO UPDATE SET allow = excluded.allow, status = excluded.status, joined_at = excluded.joined_at, revoked_at = NULL`,
    ).run(row);
  }

  node(name: string): NodeRow | undefined {
    return this.stmt('SELECT * FROM nodes WHERE name = ?').get(name) as NodeRow | undefined;
  }

  nodes(): NodeRow[] {
    return this.stmt('SELECT * FROM nodes ORDER BY name').all() as NodeRow[];
  }

  revoke(name: string, now: number): boolean {
    return (
      this.stmt("UPDATE nodes SET status = 'revoked', revoked_at = ? WHERE name = ? AND status = 'active'").run(now, name).changes === 1
    );
  }

  touch(name: string, now: number): void {
    this.stmt('UPDATE nodes SET last_seen_at = ? WHERE name = ?').run(now, name);
  }
}
