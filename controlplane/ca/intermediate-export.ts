/**
 * Exporting an intermediate CA for another CA to sign with (Istio's plug-in
 * CA, `meshctl ca export-intermediate --for istio`). The requester sends a
 * CSR: the key is made where the files are written and never reaches the
 * control plane. The root of the active generation signs (its key is read
 * from the data dir for this one signature). A signed export is recorded
 * beside the generations (ca_exports); every attempt, signed or refused, is
 * in the audit log.
 */

import { X509Certificate } from 'node:crypto';
import path from 'node:path';
import type { Clock } from '../../lib/clock.js';
import { MeshError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { readPrivateKey } from '../../lib/secret-files.js';
import { parseCsr } from '../../lib/x509/csr.js';
import { toPem } from '../../lib/x509/pem.js';
import type { AuditRepo } from '../store/audit-repo.js';
import type { CaRepo } from '../store/ca-repo.js';
import type { Db } from '../store/db.js';
import type { ExportRepo, ExportRow } from '../store/export-repo.js';
import { type CaManager, generationLabel } from './ca-manager.js';

export const EXPORT_KINDS = ['istio'] as const;
export type ExportKind = (typeof EXPORT_KINDS)[number];
export const DEFAULT_EXPORT_TTL_MS = 365 * 24 * 3600_000;

export interface ExportRequest {
  kind: string;
  /** DER PKCS#10 request of the intermediate's key; only its public key is used, after its signature verifies. */
  csr: Uint8Array;
  ttlMs: number;
}

export interface ExportedIntermediate {
  id: number;
  kind: ExportKind;
  rootGeneration: number;
  serial: string;
  notBefore: number;
  notAfter: number;
  /** The intermediate (Istio's ca-cert.pem). */
  certPem: string;
  /** The intermediate, then the root that signed it (cert-chain.pem). */
  chainPem: string;
  /** Every root of the trust bundle (root-cert.pem). */
  rootsPem: string;
  /** The record kept (ca status lists it). */
  row: ExportRow;
}

export interface ExporterDeps {
  db: Db;
  ca: CaRepo;
  exports: ExportRepo;
  audit: AuditRepo;
  manager: CaManager;
  dataDir: string;
  trustDomain: string;
  clock: Clock;
  logger: Logger;
}

const ACTION = 'ca.export-intermediate';

export class IntermediateExporter {
  constructor(private readonly deps: ExporterDeps) {}

  list(): ExportRow[] {
    return this.deps.exports.all();
  }

  async export(request: ExportRequest): Promise<ExportedIntermediate> {
    const now = this.deps.clock.now();
    try {
      return await this.sign(request, now);
    } catch (err) {
      const code = err instanceof MeshError ? err.code : 'MESH_E_INTERNAL';
      this.deps.audit.insert({
        at: now,
        actor: 'admin',
        action: ACTION,
        result: code,
        detail: `${request.kind}: ${(err as Error).message}`,
      });
      throw err;
    }
  }

  private async sign(request: ExportRequest, now: number): Promise<ExportedIntermediate> {
    const kind = request.kind as ExportKind;
    if (!EXPORT_KINDS.includes(kind)) {
      throw new MeshError('MESH_E_USAGE', `--for ${request.kind}: the intermediate can be exported for ${EXPORT_KINDS.join(', ')}`, {
        details: { flag: 'for' },
      });
    }
    if (!Number.isFinite(request.ttlMs) || request.ttlMs <= 0) {
      throw new MeshError('MESH_E_USAGE', `--ttl must be a positive duration, got ${request.ttlMs} ms`, { details: { flag: 'ttl' } });
    }
    const csr = parseCsr(request.csr);
    if (csr.keyType !== 'ec-p256') {
      throw new MeshError(
        'MESH_E_KEY_UNSUPPORTED',
        `the intermediate's key is ${csr.keyType}; Istio's CA signs with ECDSA or RSA keys, so use P-256`,
      );
    }
    const active = this.deps.manager.active();
    const rootKeyFile = this.deps.ca.all().find((row) => row.id === active.id)?.root_key_file ?? null;
    if (rootKeyFile === null) {
      throw new MeshError(
        'MESH_E_CA_EXPORT_UNAVAILABLE',
        `the active CA (generation ${active.id}) is an imported intermediate: its root's key is not on the control plane, so it cannot sign another intermediate; have the operator's root sign one for Istio, or rotate to a CA whose root is here`,
        { details: { generation: active.id } },
      );
    }
    if (Date.parse(active.root.validTo) <= now) {
      throw new MeshError(
        'MESH_E_CA_EXPIRED',
        `the root of generation ${active.id} expired at ${active.root.validTo}; rotate the CA first`,
      );
    }
    const rootKey = await readPrivateKey(path.resolve(this.deps.dataDir, rootKeyFile));
    const { createSubordinateCa } = await import('./ca-certificates.js');
    const der = await createSubordinateCa({
      trustDomain: this.deps.trustDomain,
      commonName: `${this.deps.trustDomain} ${kind} CA ${generationLabel(now)}`,
      now,
      ttlMs: request.ttlMs,
      issuer: active.root,
      issuerKey: rootKey,
      publicKey: csr.publicKey,
    });
    const cert = new X509Certificate(der);
    const certPem = toPem(der);
    const row: Omit<ExportRow, 'id'> = {
      kind,
      root_generation_id: active.id,
      serial: cert.serialNumber,
      subject: cert.subject.replace(/\n/g, ', '),
      cert_pem: certPem,
      not_before: Date.parse(cert.validFrom),
      not_after: Date.parse(cert.validTo),
      created_at: now,
    };
    let id = 0;
    this.deps.db.transaction(() => {
      id = this.deps.exports.insert(row);
      this.deps.audit.insert({
        at: now,
        actor: 'admin',
        action: ACTION,
        spiffe_id: `spiffe://${this.deps.trustDomain}`,
        serial: row.serial,
        result: 'ok',
        detail: `exported-intermediate (${kind}) ${id} under generation ${active.id}, expires ${cert.validTo}`,
      });
    })();
    this.deps.logger.info('exported an intermediate CA', { kind, export: id, generation: active.id, serial: row.serial });
    return {
      id,
      kind,
      rootGeneration: active.id,
      serial: row.serial,
      notBefore: row.not_before,
      notAfter: row.not_after,
      certPem,
      chainPem: certPem + active.rootPem,
      rootsPem: this.deps.manager.bundle().roots.join(''),
      row: { id, ...row },
    };
  }
}
