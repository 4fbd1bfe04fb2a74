/**
 * The control plane's identity operations, independent of transport: join with
 * a single-use token, node SVID renewal and workload SVID signing for
 * authenticated nodes, node revocation. Every decision writes one audit row;
 * a certificate is handed out only after its row and its audit row commit.
 */
import { X509Certificate } from 'node:crypto';
import type { Clock } from '../lib/clock.js';
import { isMeshError, MeshError, toMeshError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { formatSpiffeId, parseSpiffeId, validateSegment } from '../lib/spiffe-id.js';
import { uriSans } from '../lib/x509/cert-info.js';
import { fromPem } from '../lib/x509/pem.js';
import { isAllowed, validatePattern } from './attestation/allow-patterns.js';
import { hashToken, looksLikeToken, newJoinToken } from './attestation/join-token.js';
import type { RateLimiter } from './attestation/rate-limiter.js';
import type { Generation, IssuedLeaf } from './ca/authority.js';
import type { Bundle, CaManager } from './ca/ca-manager.js';
import type { LeafSigner } from './ca/leaf-signer.js';
import type { AuditEntry, AuditRepo } from './store/audit-repo.js';
import type { CertRepo } from './store/cert-repo.js';
import type { CommitBatcher } from './store/commit-batcher.js';
import type { Db } from './store/db.js';
import type { NodeRepo, NodeRow } from './store/node-repo.js';

export interface IdentityConfig {
  trustDomain: string;
  svidTtlMs: number;
  nodeSvidTtlMs: number;
  maxTokenTtlMs: number;
  /** Node names that only Kubernetes pod attestation may create and renew (controlplane/kube/). */
  attestedNodeName?: (name: string) => boolean;
}

export interface IdentityDeps {
  config: IdentityConfig;
  db: Db;
  ca: CaManager;
  /** Checks CSRs and signs leaves, on worker threads or inline. */
  signer: LeafSigner;
  nodes: NodeRepo;
  certs: CertRepo;
  audit: AuditRepo;
  batcher: CommitBatcher;
  limiter: RateLimiter;
  clock: Clock;
  logger: Logger;
}

export interface SvidResult {
  spiffeId: string;
  /** Leaf first, then the signing CA and any intermediates (DER). */
  chain: Buffer[];
  serial: string;
  notAfter: number;
  bundle: Bundle;
}

export function nodeSpiffeId(trustDomain: string, name: string): string {
  return formatSpiffeId(trustDomain, 'mesh', 'node', name).toString();
}

interface Authenticated {
  node: string;
  serial: string;
  notBefore: number;
  notAfter: number;
}

export class IdentityService {
  /**
   * Node certificates already verified, by their DER: parsing and checking
   * the chain of every request cost a fifth of an issuance. Emptied when the
   * CA changes; validity is still checked on every hit, and revocation is
   * checked per request against the store.
   */
  private readonly verified = new Map<string, Authenticated>();
  private readonly revokedListeners = new Set<(node: string) => void>();

  constructor(private readonly d: IdentityDeps) {
    d.ca.onBundleChange(() => this.verified.clear());
  }

  /** Creates a join token for a node; returns the token itself only here. */
  createToken(input: { node: string; allow: readonly string[]; ttlMs: number }): { token: string; expiresAt: number; spiffeId: string } {
    const { config, clock } = this.d;
    validateSegment(input.node, 'node name');
    if (config.attestedNodeName?.(input.node) === true) {
      throw new MeshError('MESH_E_USAGE', `node name ${input.node} is reserved for Kubernetes pod attestation; choose another`, {
        details: { node: input.node },
      });
    }
    const spiffeId = nodeSpiffeId(config.trustDomain, input.node);
    const allow = input.allow.map((p) => validatePattern(p, config.trustDomain));
    if (!(input.ttlMs > 0 && input.ttlMs <= config.maxTokenTtlMs)) {
      throw new MeshError('MESH_E_USAGE', `token TTL must be between 1 ms and ${config.maxTokenTtlMs / 60_000} minutes`, {
        details: { ttlMs: input.ttlMs },
      });
    }
    const token = newJoinToken();
    const now = clock.now();
    const expiresAt = now + input.ttlMs;
    const write = () => {
      this.d.nodes.insertToken({
        hash: hashToken(token),
        node_name: input.node,
        allow: JSON.stringify(allow),
        created_at: now,
        expires_at: expiresAt,
      });
      this.audited({
        at: now,
        actor: 'admin',
        action: 'token.create',
        spiffe_id: spiffeId,
        result: 'ok',
        detail: `allow ${allow.join(' ') || '(none)'}`,
      });
    };
    this.transaction(write);
    return { token, expiresAt, spiffeId };
  }

  async join(input: { token: string; csr: Uint8Array; peer: string }): Promise<SvidResult> {
    const { config, clock } = this.d;
    const actor = `peer:${input.peer}`;
    this.limit(actor);
    const hash = looksLikeToken(input.token) ? hashToken(input.token) : undefined;
    const token = hash === undefined ? undefined : this.d.nodes.token(hash);
    try {
      if (token === undefined || hash === undefined)
        throw new MeshError('MESH_E_TOKEN_UNKNOWN', 'the join token is not known; create one with meshctl token create');
      const spiffeId = nodeSpiffeId(config.trustDomain, token.node_name);
      const gen = this.d.ca.active();
      const leaf = await this.d.signer.sign(gen, { csr: input.csr, spiffeId, ttlMs: config.nodeSvidTtlMs, now: clock.now() });
      await this.d.batcher.run(() => {
        const now = clock.now();
        if (!this.d.nodes.consumeToken(hash, now)) throw this.tokenFailure(hash, now);
        this.d.nodes.upsertNode({ name: token.node_name, spiffe_id: spiffeId, allow: token.allow, status: 'active', joined_at: now });
        this.record(gen, leaf, spiffeId, token.node_name, 'node');
        this.audited({
          at: now,
          actor: `token:${token.node_name}`,
          action: 'node.join',
          spiffe_id: spiffeId,
          serial: leaf.serial,
          result: 'ok',
        });
      });
      this.d.logger.info('node joined', { node: token.node_name, serial: leaf.serial });
      return this.result(gen, spiffeId, leaf);
    } catch (err) {
      throw await this.denied(err, {
        actor,
        action: 'node.join',
        spiffe_id: token ? nodeSpiffeId(config.trustDomain, token.node_name) : null,
      });
    }
  }

  async renewNode(input: { node: string; csr: Uint8Array }): Promise<SvidResult> {
    const actor = `node:${input.node}`;
    this.limit(actor);
    const spiffeId = nodeSpiffeId(this.d.config.trustDomain, input.node);
    try {
      this.requireActive(input.node);
      if (this.d.config.attestedNodeName?.(input.node) === true) {
        throw new MeshError(
          'MESH_E_NOT_AUTHORIZED',
          `node ${input.node} is a Kubernetes pod's: it renews by attesting again with its current service-account token (AttestKubernetes)`,
          { details: { node: input.node } },
        );
      }
      return await this.issue({
        node: input.node,
        spiffeId,
        csr: input.csr,
        ttlMs: this.d.config.nodeSvidTtlMs,
        kind: 'node',
        action: 'node.renew',
      });
    } catch (err) {
      throw await this.denied(err, { actor, action: 'node.renew', spiffe_id: spiffeId });
    }
  }

  async signWorkload(input: { node: string; spiffeId: string; csr: Uint8Array }): Promise<SvidResult> {
    const actor = `node:${input.node}`;
    this.limit(actor);
    try {
      const id = parseSpiffeId(input.spiffeId);
      const node = this.requireActive(input.node);
      const allowed = JSON.parse(node.allow) as string[];
      if (id.trustDomain !== this.d.config.trustDomain || !isAllowed(id, allowed)) {
        throw new MeshError(
          'MESH_E_NOT_AUTHORIZED',
          `node ${input.node} is not allowed ${input.spiffeId}; its token allowed: ${allowed.join(', ') || '(nothing)'}`,
          {
            details: { node: input.node, spiffeId: input.spiffeId },
          },
        );
      }
      return await this.issue({
        node: input.node,
        spiffeId: id.toString(),
        csr: input.csr,
        ttlMs: this.d.config.svidTtlMs,
        kind: 'workload',
        action: 'svid.sign',
      });
    } catch (err) {
      throw await this.denied(err, { actor, action: 'svid.sign', spiffe_id: input.spiffeId.slice(0, 2048) });
    }
  }

  /**
   * A node SVID for a node whose right to exist was just attested elsewhere
   * (a Kubernetes pod's token): the node record is created or updated to
   * hold exactly `allow`, the SVID issued, both audited in one transaction.
   * A revoked node stays revoked (MESH_E_NODE_REVOKED).
   */
  async admitAttested(input: {
    node: string;
    allow: readonly string[];
    csr: Uint8Array;
    ttlMs: number;
    actor: string;
    action: string;
    detail: string;
  }): Promise<SvidResult> {
    const { config, clock } = this.d;
    const spiffeId = nodeSpiffeId(config.trustDomain, input.node);
    const allow = JSON.stringify(input.allow.map((p) => validatePattern(p, config.trustDomain)));
    const refuseRevoked = () => {
      if (this.d.nodes.node(input.node)?.status === 'revoked')
        throw new MeshError('MESH_E_NODE_REVOKED', `node ${input.node} was revoked; attestation does not bring it back`, {
          details: { node: input.node },
        });
    };
    refuseRevoked();
    const gen = this.d.ca.active();
    const leaf = await this.d.signer.sign(gen, { csr: input.csr, spiffeId, ttlMs: input.ttlMs, now: clock.now() });
    await this.d.batcher.run(() => {
      const now = clock.now();
      refuseRevoked();
      this.d.nodes.upsertNode({ name: input.node, spiffe_id: spiffeId, allow, status: 'active', joined_at: now });
      this.record(gen, leaf, spiffeId, input.node, 'node');
      this.audited({
        at: now,
        actor: input.actor,
        action: input.action,
        spiffe_id: spiffeId,
        serial: leaf.serial,
        result: 'ok',
        detail: input.detail,
      });
    });
    this.d.logger.info('node attested', { node: input.node, serial: leaf.serial, action: input.action });
    return this.result(gen, spiffeId, leaf);
  }

  /** Audits a refused request (its code is the result) and returns it as a MeshError to throw. */
  refused(err: unknown, entry: Omit<AuditEntry, 'at' | 'result'>): Promise<MeshError> {
    return this.denied(err, entry);
  }

  /** Takes one request from `key`'s rate budget (MESH_E_RATE_LIMITED when spent). */
  takeRate(key: string): void {
    this.limit(key);
  }

  /** Authenticates a node from the leaf certificate it presented over mTLS. */
  authenticate(peerDer: Buffer | undefined): { node: string; serial: string } {
    if (peerDer === undefined) throw new MeshError('MESH_E_UNAUTHENTICATED', 'this call needs the node certificate (mTLS); join first');
    const key = peerDer.toString('base64');
    const hit = this.verified.get(key);
    const now = this.d.clock.now();
    if (hit !== undefined && now >= hit.notBefore && now < hit.notAfter) return { node: hit.node, serial: hit.serial };
    const result = this.verifyPeer(peerDer);
    if (this.verified.size >= 10_000) this.verified.clear();
    this.verified.set(key, result);
    return { node: result.node, serial: result.serial };
  }

  private verifyPeer(peerDer: Buffer): Authenticated {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(peerDer);
    } catch {
      throw new MeshError('MESH_E_UNAUTHENTICATED', 'the client certificate cannot be parsed');
    }
    const gen = this.d.ca.issuerOf(cert);
    const now = this.d.clock.now();
    if (gen === undefined) throw new MeshError('MESH_E_UNAUTHENTICATED', 'the client certificate was not issued by this control plane');
    if (Date.parse(cert.validTo) <= now || Date.parse(cert.validFrom) > now) {
      throw new MeshError(
        'MESH_E_UNAUTHENTICATED',
        `the node certificate is not valid now (valid ${cert.validFrom} to ${cert.validTo}); join again with a new token`,
      );
    }
    const [uri] = uriSans(cert);
    const prefix = `spiffe://${this.d.config.trustDomain}/mesh/node/`;
    if (uri === undefined || !uri.startsWith(prefix))
      throw new MeshError('MESH_E_UNAUTHENTICATED', 'the client certificate is not a node certificate');
    const node = uri.slice(prefix.length);
    const row = this.d.certs.find(gen.id, cert.serialNumber);
    if (row === undefined || row.node_name !== node || row.kind !== 'node') {
      throw new MeshError('MESH_E_UNAUTHENTICATED', 'the client certificate is not on record');
    }
    return { node, serial: cert.serialNumber, notBefore: Date.parse(cert.validFrom), notAfter: Date.parse(cert.validTo) };
  }

  revoke(name: string): NodeRow {
    const now = this.d.clock.now();
    const node = this.d.nodes.node(name);
    if (node === undefined) throw new MeshError('MESH_E_NODE_UNKNOWN', `no node named ${name}`, { details: { node: name } });
    this.transaction(() => {
      this.d.nodes.revoke(name, now);
      this.audited({ at: now, actor: 'admin', action: 'node.revoke', spiffe_id: node.spiffe_id, result: 'ok' });
    });
    this.d.logger.warn('node revoked', { node: name });
    for (const listener of this.revokedListeners) listener(name);
    return this.d.nodes.node(name) as NodeRow;
  }

  /** Called after a node's revocation committed (its open streams end). */
  onRevoked(listener: (node: string) => void): () => void {
    this.revokedListeners.add(listener);
    return () => this.revokedListeners.delete(listener);
  }

  private async issue(input: {
    node: string;
    spiffeId: string;
    csr: Uint8Array;
    ttlMs: number;
    kind: 'node' | 'workload';
    action: string;
  }): Promise<SvidResult> {
    const gen = this.d.ca.active();
    const leaf = await this.d.signer.sign(gen, { csr: input.csr, spiffeId: input.spiffeId, ttlMs: input.ttlMs, now: this.d.clock.now() });
    await this.d.batcher.run(() => {
      const now = this.d.clock.now();
      // Checked again inside the transaction: a revocation that committed first wins.
      this.requireActive(input.node);
      this.record(gen, leaf, input.spiffeId, input.node, input.kind);
      this.d.nodes.touch(input.node, now);
      this.audited({
        at: now,
        actor: `node:${input.node}`,
        action: input.action,
        spiffe_id: input.spiffeId,
        serial: leaf.serial,
        result: 'ok',
      });
    });
    return this.result(gen, input.spiffeId, leaf);
  }

  private record(gen: Generation, leaf: IssuedLeaf, spiffeId: string, node: string, kind: 'node' | 'workload'): void {
    this.d.certs.insert({
      generation_id: gen.id,
      serial: leaf.serial,
      spiffe_id: spiffeId,
      node_name: node,
      kind,
      not_before: leaf.notBefore,
      not_after: leaf.notAfter,
      issued_at: this.d.clock.now(),
    });
  }

  private result(gen: Generation, spiffeId: string, leaf: IssuedLeaf): SvidResult {
    return {
      spiffeId,
      chain: [leaf.der, gen.signer.raw, ...gen.chainPems.map((p) => fromPem(p))],
      serial: leaf.serial,
      notAfter: leaf.notAfter,
      bundle: this.d.ca.bundle(),
    };
  }

  /** The node's row; MESH_E_NODE_UNKNOWN or MESH_E_NODE_REVOKED unless it is active. */
  requireActive(name: string): NodeRow {
    const node = this.d.nodes.node(name);
    if (node === undefined) throw new MeshError('MESH_E_NODE_UNKNOWN', `no node named ${name}`, { details: { node: name } });
    if (node.status !== 'active')
      throw new MeshError('MESH_E_NODE_REVOKED', `node ${name} was revoked; it must join again with a new token`, {
        details: { node: name },
      });
    return node;
  }

  private tokenFailure(hash: string, now: number): MeshError {
    const row = this.d.nodes.token(hash);
    if (row === undefined)
      return new MeshError('MESH_E_TOKEN_UNKNOWN', 'the join token is not known; create one with meshctl token create');
    if (row.used_at !== null)
      return new MeshError('MESH_E_TOKEN_USED', 'the join token was already used; create a new one with meshctl token create');
    return new MeshError('MESH_E_TOKEN_EXPIRED', `the join token expired at ${new Date(row.expires_at).toISOString()}; create a new one`, {
      details: { expiredAt: row.expires_at, now },
    });
  }

  private limit(key: string): void {
    if (!this.d.limiter.take(key)) throw new MeshError('MESH_E_RATE_LIMITED', `too many requests from ${key}; slow down and retry`);
  }

  private transaction(fn: () => void): void {
    this.d.db.transaction(fn)();
  }

  /** The audit row of a successful operation: if it cannot be written, the operation fails with it. */
  private audited(entry: AuditEntry): void {
    try {
      this.d.audit.insert(entry);
    } catch (err) {
      throw new MeshError(
        'MESH_E_AUDIT_FAILED',
        `the audit row could not be written, so ${entry.action} was not done: ${(err as Error).message}`,
        { cause: err },
      );
    }
  }

  /** Writes the denial audit row; if even that fails, the caller learns so. */
  private async denied(err: unknown, entry: Omit<AuditEntry, 'at' | 'result'>): Promise<MeshError> {
    const e = isMeshError(err)
      ? err
      : new MeshError('MESH_E_STORE', `the operation was not done: ${toMeshError(err).message}`, { cause: err });
    if (e.code === 'MESH_E_RATE_LIMITED') return e;
    try {
      await this.d.batcher.run(() =>
        this.d.audit.insert({ ...entry, at: this.d.clock.now(), result: e.code, detail: e.message.slice(0, 500) }),
      );
    } catch (auditErr) {
      this.d.logger.error('could not write the audit row of a denied request', { err: toMeshError(auditErr), action: entry.action });
    }
    return e;
  }
}
