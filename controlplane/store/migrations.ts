/**
 * Numbered schema migrations, applied in order inside one transaction each and
 * recorded in schema_migrations. Migrations are never edited once released;
 * a change is a new number. (Kept as TypeScript strings rather than .sql files
 * so the compiled program and the packages carry them without a copy step.)
 */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = Object.freeze([
  {
    version: 1,
    name: 'initial',
    sql: `
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE ca_generations (
  id INTEGER PRIMARY KEY,
  state TEXT NOT NULL CHECK (state IN ('prepared', 'active', 'previous', 'retired')),
  source TEXT NOT NULL CHECK (source IN ('generated', 'imported')),
  root_pem TEXT NOT NULL,
  signer_pem TEXT NOT NULL,
  chain_pem TEXT NOT NULL DEFAULT '',
  signer_key_file TEXT NOT NULL,
  root_key_file TEXT,
  created_at INTEGER NOT NULL,
  activated_at INTEGER,
  retired_at INTEGER
);
CREATE UNIQUE INDEX ca_one_active ON ca_generations(state) WHERE state IN ('prepared', 'active', 'previous');

CREATE TABLE nodes (
  name TEXT PRIMARY KEY,
  spiffe_id TEXT NOT NULL UNIQUE,
  allow TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('active', 'revoked')),
  joined_at INTEGER NOT NULL,
  revoked_at INTEGER,
  last_seen_at INTEGER
);

CREATE TABLE join_tokens (
  hash TEXT PRIMARY KEY,
  node_name TEXT NOT NULL,
  allow TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  used_at INTEGER
);

CREATE TABLE certificates (
  id INTEGER PRIMARY KEY,
  generation_id INTEGER NOT NULL REFERENCES ca_generations(id),
  serial TEXT NOT NULL,
  spiffe_id TEXT NOT NULL,
  node_name TEXT,
  kind TEXT NOT NULL CHECK (kind IN ('node', 'workload', 'server')),
  not_before INTEGER NOT NULL,
  not_after INTEGER NOT NULL,
  issued_at INTEGER NOT NULL,
  UNIQUE (generation_id, serial)
);
CREATE INDEX certificates_by_expiry ON certificates(generation_id, not_after);
CREATE INDEX certificates_by_node ON certificates(node_name, serial);

CREATE TABLE audit (
  id INTEGER PRIMARY KEY,
  at INTEGER NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  spiffe_id TEXT,
  serial TEXT,
  result TEXT NOT NULL,
  detail TEXT
);
`,
  },
  {
    version: 2,
    name: 'policies',
    // One row per policy resource (controlplane/policy/policy-repo.ts). `version` counts the
    // resource's changes; `revision` is the mesh-wide revision of its last change, kept in
    // meta.policy_revision and bumped once per apply or delete that changed something.
    sql: `
CREATE TABLE policies (
  kind TEXT NOT NULL,
  name TEXT NOT NULL,
  version INTEGER NOT NULL CHECK (version >= 1),
  revision INTEGER NOT NULL CHECK (revision >= 1),
  source_json TEXT NOT NULL,
  updated_at INTEGER NOT NULL,
  updated_by TEXT NOT NULL,
  PRIMARY KEY (kind, name)
);
CREATE INDEX policies_by_revision ON policies(revision);
INSERT OR IGNORE INTO meta (key, value) VALUES ('policy_revision', '0');
`,
  },
  {
    version: 3,
    name: 'ca-exports',
    // Intermediate CAs signed for another CA (Istio's plug-in CA) under a root of the bundle.
    // The control plane never holds their keys, so they are not ca_generations rows (those
    // are loaded with their signing key at start); they are listed beside them.
    sql: `
CREATE TABLE ca_exports (
  id INTEGER PRIMARY KEY,
  kind TEXT NOT NULL,
  root_generation_id INTEGER NOT NULL REFERENCES ca_generations(id),
  serial TEXT NOT NULL,
  subject TEXT NOT NULL,
  cert_pem TEXT NOT NULL,
  not_before INTEGER NOT NULL,
  not_after INTEGER NOT NULL,
  created_at INTEGER NOT NULL
);
`,
  },
]);
