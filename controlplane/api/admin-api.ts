/** The Admin gRPC service on the Unix socket: what meshctl does. */
import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import { MeshError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import type { Generation } from '../ca/authority.js';
import type { CaManager } from '../ca/ca-manager.js';
import type { IntermediateExporter } from '../ca/intermediate-export.js';
import type { IdentityService } from '../identity-service.js';
import type { PolicyStore } from '../policy/policy-store.js';
import { type NodeSyncSource, nodeStatusDetail, nodeSyncFields, unknownNode } from '../status/node-sync-view.js';
import type { AuditRepo } from '../store/audit-repo.js';
import { backupDb, type Db } from '../store/db.js';
import type { ExportRow } from '../store/export-repo.js';
import type { NodeRepo, NodeRow } from '../store/node-repo.js';
import { unary } from './handlers.js';
import { bundleMessage } from './identity-api.js';
import { policyHandlers } from './policy-api.js';

export interface AdminDeps {
  identity: IdentityService;
  ca: CaManager;
  nodes: NodeRepo;
  audit: AuditRepo;
  db: Db;
  policies: PolicyStore;
  logger: Logger;
  status: () => Record<string, unknown>;
  /** Node sync status (reports from agents); absent: NodeInfo carries no sync fields. */
  sync?: NodeSyncSource;
  /** Intermediates exported for other CAs (meshctl ca export-intermediate); absent: not offered. */
  exporter?: IntermediateExporter;
}

function nodeMessage(row: NodeRow, sync?: NodeSyncSource) {
  return {
    ...(sync === undefined ? {} : nodeSyncFields(row, sync)),
    name: row.name,
    spiffe_id: row.spiffe_id,
    allow: JSON.parse(row.allow) as string[],
    status: row.status,
    joined_at_ms: row.joined_at,
    revoked_at_ms: row.revoked_at ?? 0,
    last_seen_at_ms: row.last_seen_at ?? 0,
  };
}

function generationMessage(g: Generation) {
  return {
    id: g.id,
    state: g.state,
    source: g.source,
    root_subject: g.root.subject.replace(/\n/g, ', '),
    root_not_after: g.root.validTo,
    signer_subject: g.signer.subject.replace(/\n/g, ', '),
    signer_not_after: g.signer.validTo,
    root_fingerprint: createHash('sha256').update(g.root.raw).digest('hex'),
  };
}

function exportMessage(row: ExportRow) {
  return {
    id: row.id,
    kind: row.kind,
    root_generation: row.root_generation_id,
    serial: row.serial,
    subject: row.subject,
    not_before_ms: row.not_before,
    not_after_ms: row.not_after,
    created_at_ms: row.created_at,
  };
}

export function adminHandlers(deps: AdminDeps): grpc.UntypedServiceImplementation {
  const { identity, ca, nodes, audit, db, logger, exporter } = deps;
  const caStatus = (message = '') => ({
    generations: ca.all().map(generationMessage),
    bundle_sequence: ca.bundle().sequence,
    message,
    exports: (exporter?.list() ?? []).map(exportMessage),
  });
  return {
    CreateToken: unary(logger, 'CreateToken', (req: { node_name: string; allow: string[]; ttl_ms: number }) => {
      const created = identity.createToken({ node: req.node_name, allow: req.allow, ttlMs: req.ttl_ms });
      return { token: created.token, expires_at_ms: created.expiresAt, node_spiffe_id: created.spiffeId };
    }),
    ListNodes: unary(logger, 'ListNodes', () => ({ nodes: nodes.nodes().map((row) => nodeMessage(row, deps.sync)) })),
    GetNodeStatus: unary(logger, 'GetNodeStatus', (req: { name: string }) => {
      if (deps.sync === undefined) throw new MeshError('MESH_E_INTERNAL', 'node sync status is not served by this control plane');
      const row = nodes.nodes().find((n) => n.name === req.name);
      if (row === undefined) throw unknownNode(req.name);
      return { node: nodeMessage(row, deps.sync), ...nodeStatusDetail(row, deps.sync) };
    }),
    RevokeNode: unary(logger, 'RevokeNode', (req: { name: string }) => nodeMessage(identity.revoke(req.name))),
    GetBundle: unary(logger, 'GetBundle', () => bundleMessage(ca.bundle())),
    ImportCa: unary(logger, 'ImportCa', async (req: { cert_pem: string; key_pem: string; chain_pem: string }) => {
      const gen = await ca.importCa(req.cert_pem, req.key_pem, req.chain_pem);
      return caStatus(`imported as generation ${gen.id} (prepared: in the bundle, not signing yet); next: meshctl ca rotate activate`);
    }),
    RotateCa: unary(logger, 'RotateCa', async (req: { step: string; force: boolean }) => {
      if (req.step === 'prepare') {
        const gen = await ca.prepare();
        return caStatus(`generation ${gen.id} prepared: its root is in the bundle; activate once agents have it`);
      }
      if (req.step === 'activate') {
        const gen = await ca.activate();
        return caStatus(`generation ${gen.id} now signs; retire the previous root when its certificates have expired`);
      }
      if (req.step === 'retire') {
        const result = await ca.retire(req.force);
        return caStatus(`generation ${result.retired} retired and removed from the bundle`);
      }
      throw new MeshError('MESH_E_USAGE', `unknown rotation step ${JSON.stringify(req.step)}; use prepare, activate or retire`);
    }),
    GetCaStatus: unary(logger, 'GetCaStatus', () => caStatus()),
    ExportIntermediate: unary(logger, 'ExportIntermediate', async (req: { kind: string; csr: Buffer; ttl_ms: number }) => {
      if (exporter === undefined) throw new MeshError('MESH_E_INTERNAL', 'this control plane does not export intermediates');
      const done = await exporter.export({ kind: req.kind, csr: req.csr, ttlMs: req.ttl_ms });
      return { intermediate: exportMessage(done.row), cert_pem: done.certPem, chain_pem: done.chainPem, roots_pem: done.rootsPem };
    }),
    ListAudit: unary(logger, 'ListAudit', (req: { limit: number }) => ({
      entries: audit.list({ limit: req.limit > 0 ? req.limit : 1000 }).map((r) => ({
        id: r.id,
        at_ms: r.at,
        actor: r.actor,
        action: r.action,
        spiffe_id: r.spiffe_id ?? '',
        serial: r.serial ?? '',
        result: r.result,
        detail: r.detail ?? '',
      })),
    })),
    Backup: unary(logger, 'Backup', async (req: { out: string }) => {
      if (!path.isAbsolute(req.out)) throw new MeshError('MESH_E_USAGE', `--out must be an absolute path, got ${req.out}`);
      const exists = await stat(req.out).then(
        () => true,
        () => false,
      );
      if (exists) throw new MeshError('MESH_E_USAGE', `${req.out} already exists; choose a new file`);
      const { pages } = await backupDb(db, req.out);
      const { size } = await stat(req.out);
      logger.info('backup written', { out: req.out, bytes: size });
      return { out: req.out, pages, bytes: size };
    }),
    Status: unary(logger, 'Status', () => deps.status()),
    ...policyHandlers({ policies: deps.policies, logger }),
  };
}
