/** CA generations (root + signing CA) and the trust-bundle sequence number. */
import type { Db } from './db.js';

export type GenerationState = 'prepared' | 'active' | 'previous' | 'retired';

export interface GenerationRow {
  id: number;
  state: GenerationState;
  source: 'generated' | 'imported';
  root_pem: string;
  signer_pem: string;
  chain_pem: string;
  signer_key_file: string;
  root_key_file: string | null;
  created_at: number;
  activated_at: number | null;
  retired_at: number | null;
}

export class CaRepo {
  constructor(private readonly db: Db) {}

  insert(row: Omit<GenerationRow, 'id' | 'activated_at' | 'retired_at'>): number {
    const result = this.db
      .prepare(
        `INSERT INTO ca_generations (state, source, root_pem, signer_pem, chain_pem, signer_key_file, root_key_file, created_at, activated_at)
         VALUES (@state, @source, @root_pem, @signer_pem, @chain_pem, @signer_key_file, @root_key_file, @created_at, CASE WHEN @state = 'active' THEN @created_at END)`,
      )
      .run(row);
    return Number(result.lastInsertRowid);
  }

  all(): GenerationRow[] {
    return this.db.prepare('SELECT * FROM ca_generations ORDER BY id').all() as GenerationRow[];
  }

  inState(state: GenerationState): GenerationRow | undefined {
    return this.db.prepare('SELECT * FROM ca_generations WHERE state = ?').get(state) as GenerationRow | undefined;
  }

  setState(id: number, state: GenerationState, at: number): void {
    this.db
      .prepare(
        `UPDATE ca_generations SET state = @state,
           activated_at = CASE WHEN @state = 'active' THEN @at ELSE activated_at END,
           retired_at = CASE WHEN @state = 'retired' THEN @at ELSE retired_at END
         WHERE id = @id`,
      )
      .run({ id, state, at });
  }

  bundleSequence(): number {
    const row = this.db.prepare("SELECT value FROM meta WHERE key = 'bundle_sequence'").get() as { value: string } | undefined;
    return row ? Number(row.value) : 0;
  }

  bumpBundleSequence(): number {
    const next = this.bundleSequence() + 1;
    this.db
      .prepare("INSERT INTO meta (key, value) VALUES ('bundle_sequence', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
      .run(String(next));
    return next;
  }

  getMeta(key: string): string | undefined {
    return (this.db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined)?.value;
  }

  setMeta(key: string, value: string): void {
    this.db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value').run(key, value);
  }
}
