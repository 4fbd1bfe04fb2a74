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

/** last_seen_at is written at most this often per node: it is for `meshctl node list`, not an audit trail. */
export const TOUCH_INTERVAL_MS = 1000;

export class NodeRepo {
  private readonly statements = new Map<string, Statement<unknown[]>>();
  /**
   * Node rows read outside a transaction, by name. Every issuance reads its
   * node before signing; the check that decides is repeated inside the
   * write transaction, which always reads the table. Any write to a node
   * drops its entry.
   */
  private readonly cached = new Map<string, NodeRow>();
  private readonly touched = new Map<string, number>();

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
    this.cached.delete(row.name);
    this.stmt(
      `INSERT INTO nodes (name, spiffe_id, allow, status, joined_at) VALUES (@name, @spiffe_id, @allow, @status, @joined_at)
         ON CONFLICT(name) DO UPDATE SET allow = excluded.allow, status = excluded.status, joined_at = excluded.joined_at, revoked_at = NULL`,
    ).run(row);
  }

  /** The node's row; outside a transaction possibly from the cache (without last_seen_at being current). */
  node(name: string): NodeRow | undefined {
    const inTransaction = this.db.inTransaction;
    if (!inTransaction) {
      const hit = this.cached.get(name);
      if (hit !== undefined) return hit;
    }
    const row = this.stmt('SELECT * FROM nodes WHERE name = ?').get(name) as NodeRow | undefined;
    if (row !== undefined && !inTransaction) {
      if (this.cached.size >= 10_000) this.cached.clear();
      this.cached.set(name, row);
    }
    return row;
  }

  nodes(): NodeRow[] {
    return this.stmt('SELECT * FROM nodes ORDER BY name').all() as NodeRow[];
  }

  revoke(name: string, now: number): boolean {
    this.cached.delete(name);
    return (
      this.stmt("UPDATE nodes SET status = 'revoked', revoked_at = ? WHERE name = ? AND status = 'active'").run(now, name).changes === 1
    );
  }

  /** Records that the node was seen; at most once per TOUCH_INTERVAL_MS per node. */
  touch(name: string, now: number): void {
    const last = this.touched.get(name);
    if (last !== undefined && now - last < TOUCH_INTERVAL_MS && now >= last) return;
    this.stmt('UPDATE nodes SET last_seen_at = ? WHERE name = ?').run(now, name);
    if (this.touched.size >= 10_000) this.touched.clear();
    this.touched.set(name, now);
  }
}
