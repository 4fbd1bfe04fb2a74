/**
 * The PolicyStore on the control plane's SQLite (migration 2: table
 * `policies`, mesh revision in meta.policy_revision). An apply is validated
 * whole (policy-validate.ts) and written in one transaction with its audit
 * rows; listeners hear of it after the commit. An unchanged document changes
 * nothing; a change bumps the resource's version, and every resource changed
 * by one apply gets the same new mesh revision.
 */
import type { Clock } from '../../lib/clock.js';
import { MeshError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { parsePolicyDocument } from '../../lib/policy/parse.js';
import { POLICY_KINDS, type PolicyDocument, type PolicyKind } from '../../lib/policy/schema.js';
import type { AuditRepo } from '../store/audit-repo.js';
import type { Db } from '../store/db.js';
import { canonicalJson } from './canonical-json.js';
import { POLICY_SCHEMAS } from './policy-schemas.js';
import type { ApplyResult, PolicyChange, PolicyRecord, PolicyStore } from './policy-store.js';
import { invalidPolicies, validateApply } from './policy-validate.js';

interface PolicyRow {
  kind: string;
  name: string;
  version: number;
  revision: number;
  source_json: string;
  updated_at: number;
  updated_by: string;
}

export interface PolicyRepoDeps {
  db: Db;
  audit: AuditRepo;
  trustDomain: string;
  clock: Clock;
  logger?: Logger;
}

const REVISION_KEY = 'policy_revision';

export function isPolicyKind(kind: string): kind is PolicyKind {
  return (POLICY_KINDS as readonly string[]).includes(kind);
}

function toRecord(row: PolicyRow): PolicyRecord {
  return {
    kind: row.kind as PolicyKind,
    name: row.name,
    version: row.version,
    revision: row.revision,
    source: JSON.parse(row.source_json) as unknown,
    updatedAtMs: row.updated_at,
    updatedBy: row.updated_by,
  };
}

export class PolicyRepo implements PolicyStore {
  private readonly listeners = new Set<(revision: number) => void>();

  constructor(private readonly deps: PolicyRepoDeps) {}

  revision(): number {
    const row = this.deps.db.prepare('SELECT value FROM meta WHERE key = ?').get(REVISION_KEY) as { value: string } | undefined;
    return row === undefined ? 0 : Number(row.value);
  }

  list(kind?: PolicyKind): readonly PolicyRecord[] {
    const rows = (
      kind === undefined
        ? this.deps.db.prepare('SELECT * FROM policies ORDER BY kind, name').all()
        : this.deps.db.prepare('SELECT * FROM policies WHERE kind = ? ORDER BY name').all(kind)
    ) as PolicyRow[];
    return rows.map(toRecord);
  }

  get(kind: PolicyKind, name: string): PolicyRecord | undefined {
    const row = this.deps.db.prepare('SELECT * FROM policies WHERE kind = ? AND name = ?').get(kind, name) as PolicyRow | undefined;
    return row === undefined ? undefined : toRecord(row);
  }

  apply(documents: readonly unknown[], actor: string, options: { dryRun?: boolean } = {}): ApplyResult {
    const { db } = this.deps;
    const dryRun = options.dryRun === true;
    const run = db.transaction((): ApplyResult => {
      const rows = db.prepare('SELECT * FROM policies').all() as PolicyRow[];
      const byKey = new Map(rows.map((r) => [`${r.kind}/${r.name}`, r]));
      const result = validateApply(documents, rows.map(storedDocument), this.deps.trustDomain);
      if (!result.ok) throw invalidPolicies(result.problems);
      const changes: Array<PolicyChange & { version: number }> = result.documents.map((doc, i) => {
        const before = byKey.get(`${doc.kind}/${doc.name}`);
        const source = documents[i];
        if (before === undefined) return { kind: doc.kind, name: doc.name, action: 'created', after: source, version: 1 };
        const old = JSON.parse(before.source_json) as unknown;
        return canonicalJson(old) === canonicalJson(source)
          ? { kind: doc.kind, name: doc.name, action: 'unchanged', before: old, after: old, version: before.version }
          : { kind: doc.kind, name: doc.name, action: 'updated', before: old, after: source, version: before.version + 1 };
      });
      const current = this.revision();
      const changed = changes.filter((c) => c.action !== 'unchanged');
      if (dryRun || changed.length === 0) return { revision: current, changes };
      const revision = current + 1;
      const now = this.deps.clock.now();
      const upsert = db.prepare(
        `INSERT INTO policies (kind, name, version, revision, source_json, updated_at, updated_by)
         VALUES (@kind, @name, @version, @revision, @source_json, @updated_at, @updated_by)
         ON CONFLICT (kind, name) DO UPDATE SET version = excluded.version, revision = excluded.revision,
           source_json = excluded.source_json, updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
      );
      for (const c of changed) {
        upsert.run({
          kind: c.kind,
          name: c.name,
          version: c.version,
          revision,
          source_json: JSON.stringify(c.after),
          updated_at: now,
          updated_by: actor,
        });
        this.audit(now, actor, c.action === 'created' ? 'policy.create' : 'policy.update', c.kind, c.name, c.version, revision);
      }
      this.setRevision(revision);
      return { revision, changes };
    });
    let result: ApplyResult;
    try {
      result = run();
    } catch (err) {
      if (!dryRun && err instanceof MeshError && err.code === 'MESH_E_POLICY_INVALID') {
        const problems = (err.details.problems as unknown[] | undefined)?.length ?? 0;
        this.deps.audit.insert({
          at: this.deps.clock.now(),
          actor,
          action: 'policy.apply',
          result: err.code,
          detail: `${documents.length} documents, ${problems} problems; nothing stored`,
        });
      }
      throw err;
    }
    // Callers get their own view: `version` is internal bookkeeping of the change list.
    const changes = result.changes.map(({ kind, name, action, before, after }) => ({
      kind,
      name,
      action,
      ...(before === undefined ? {} : { before }),
      ...(after === undefined ? {} : { after }),
    }));
    if (!dryRun && changes.some((c) => c.action !== 'unchanged')) this.notify(result.revision);
    return { revision: result.revision, changes };
  }

  delete(kind: PolicyKind, name: string, actor: string): ApplyResult {
    const { db } = this.deps;
    const result = db.transaction((): ApplyResult => {
      const before = this.get(kind, name);
      if (before === undefined)
        throw new MeshError('MESH_E_POLICY_NOT_FOUND', `no ${kind} named ${name}; meshctl policy list --kind ${kind} shows what exists`, {
          details: { kind, name },
        });
      const revision = this.revision() + 1;
      db.prepare('DELETE FROM policies WHERE kind = ? AND name = ?').run(kind, name);
      this.audit(this.deps.clock.now(), actor, 'policy.delete', kind, name, before.version, revision);
      this.setRevision(revision);
      return { revision, changes: [{ kind, name, action: 'deleted', before: before.source }] };
    })();
    this.notify(result.revision);
    return result;
  }

  onChange(listener: (revision: number) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  private setRevision(revision: number): void {
    this.deps.db
      .prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value')
      .run(REVISION_KEY, String(revision));
  }

  private audit(at: number, actor: string, action: string, kind: string, name: string, version: number, revision: number): void {
    this.deps.audit.insert({ at, actor, action, result: 'ok', detail: `${kind}/${name} version ${version} revision ${revision}` });
  }

  private notify(revision: number): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(revision);
      } catch (err) {
        this.deps.logger?.error('policy change listener failed', { revision, err });
      }
    }
  }
}

/** A stored row as a parsed document; rows were validated when applied. */
function storedDocument(row: PolicyRow): PolicyDocument {
  const parsed = parsePolicyDocument(JSON.parse(row.source_json), POLICY_SCHEMAS);
  if (!parsed.ok)
    throw new MeshError('MESH_E_INTERNAL', `stored policy ${row.kind}/${row.name} no longer validates: ${parsed.issues[0]?.message}`, {
      details: { kind: row.kind, name: row.name },
    });
  return parsed.document;
}
