/**
 * The CA's lifecycle over the store: first-start creation, loading, imports and
 * the three-step root rotation (prepare -> activate -> retire). The trust
 * bundle is the roots of the prepared, active and previous generations; each
 * change bumps its sequence number and is announced to listeners (the bundle
 * stream, the server's own certificate).
 */
import { createPrivateKey, type KeyObject, randomBytes, X509Certificate } from 'node:crypto';
import path from 'node:path';
import type { Clock } from '../../lib/clock.js';
import { MeshError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { newKeyPair, readPrivateKey, writePrivateKey } from '../../lib/secret-files.js';
import { subjectKeyIdentifier, uriSans } from '../../lib/x509/cert-info.js';
import { signatureAlgorithmFor } from '../../lib/x509/csr.js';
import { toPem } from '../../lib/x509/pem.js';
import type { AuditRepo } from '../store/audit-repo.js';
import type { CaRepo, GenerationRow } from '../store/ca-repo.js';
import type { CertRepo } from '../store/cert-repo.js';
import type { Db } from '../store/db.js';
import type { ExportRepo } from '../store/export-repo.js';
import { type Generation, generationFromRow } from './authority.js';
import { checkImportPath } from './import-checks.js';

const YEAR = 365 * 24 * 3600_000;
export const ROOT_TTL_MS = 10 * YEAR;
export const SIGNER_TTL_MS = 2 * YEAR;

/**
 * A label unique to one generation: it names the CA subjects and the key
 * files. Two generations made in the same second must differ, or OpenSSL
 * picks a root by name and fails the signature, and a key file is overwritten.
 */
export function generationLabel(now: number): string {
  return `${new Date(now).toISOString().slice(0, 19).replace(/[-:]/g, '')}-${randomBytes(4).toString('hex')}`;
}

export interface Bundle {
  trustDomain: string;
  roots: string[];
  sequence: number;
}

export interface CaManagerDeps {
  db: Db;
  ca: CaRepo;
  certs: CertRepo;
  audit: AuditRepo;
  dataDir: string;
  trustDomain: string;
  clock: Clock;
  logger: Logger;
  /** Intermediates exported for other CAs: retiring their root needs --force. */
  exports?: ExportRepo;
}

export class CaManager {
  private generations: Generation[] = [];
  private listeners = new Set<(bundle: Bundle) => void>();

  constructor(private readonly deps: CaManagerDeps) {}

  /** Creates the first CA when the store has none, then loads every generation still in the bundle. */
  async init(): Promise<void> {
    if (this.deps.ca.inState('active') === undefined) {
      const row = await this.createGenerated('active');
      this.deps.db.transaction(() => {
        const id = this.deps.ca.insert(row);
        this.deps.ca.bumpBundleSequence();
        this.deps.audit.insert({
          at: this.deps.clock.now(),
          actor: 'controlplane',
          action: 'ca.init',
          result: 'ok',
          detail: `generation ${id}`,
        });
      })();
      this.deps.logger.info('created the CA', { trustDomain: this.deps.trustDomain });
    }
    await this.reload();
  }

  private async reload(): Promise<void> {
    const rows = this.deps.ca.all().filter((r) => r.state !== 'retired');
    const loaded: Generation[] = [];
    for (const row of rows) {
      const key = await readPrivateKey(path.resolve(this.deps.dataDir, row.signer_key_file));
      loaded.push(generationFromRow(row, key, this.deps.logger));
    }
    this.generations = loaded;
    this.cachedBundle = undefined;
  }

  private async createGenerated(state: 'active' | 'prepared'): Promise<Omit<GenerationRow, 'id' | 'activated_at' | 'retired_at'>> {
    const now = this.deps.clock.now();
    const label = generationLabel(now);
    const rootKey = newKeyPair();
    const signerKey = newKeyPair();
    const { createCaPair } = await import('./ca-certificates.js');
    const pair = await createCaPair({
      trustDomain: this.deps.trustDomain,
      label,
      now,
      rootKey,
      signerKey,
      rootTtlMs: ROOT_TTL_MS,
      signerTtlMs: SIGNER_TTL_MS,
    });
    const rootKeyFile = path.join('ca', `root-${label}.key`);
    const signerKeyFile = path.join('ca', `signer-${label}.key`);
    await writePrivateKey(path.join(this.deps.dataDir, rootKeyFile), rootKey.privateKey, { overwrite: false });
    await writePrivateKey(path.join(this.deps.dataDir, signerKeyFile), signerKey.privateKey, { overwrite: false });
    return {
      state,
      source: 'generated',
      root_pem: pair.rootPem,
      signer_pem: pair.signerPem,
      chain_pem: '',
      signer_key_file: signerKeyFile,
      root_key_file: rootKeyFile,
      created_at: now,
    };
  }

  active(): Generation {
    const gen = this.generations.find((g) => g.state === 'active');
    if (gen === undefined) throw new MeshError('MESH_E_INTERNAL', 'no active CA generation is loaded');
    return gen;
  }

  all(): readonly Generation[] {
    return this.generations;
  }

  /** The current bundle; the same object until the next change (callers may cache by identity). */
  bundle(): Bundle {
    this.cachedBundle ??= Object.freeze({
      trustDomain: this.deps.trustDomain,
      roots: this.generations.map((g) => g.rootPem),
      sequence: this.deps.ca.bundleSequence(),
    });
    return this.cachedBundle;
  }

  private cachedBundle: Bundle | undefined;

  onBundleChange(listener: (bundle: Bundle) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private announce(): void {
    const bundle = this.bundle();
    for (const listener of this.listeners) listener(bundle);
  }

  /** The generation whose signing CA issued `cert`, among those still in the bundle. */
  issuerOf(cert: X509Certificate): Generation | undefined {
    return this.generations.find((g) => cert.checkIssued(g.signer) && cert.verify(g.signer.publicKey));
  }

  private step(action: string, detail: string, change: () => void): void {
    const now = this.deps.clock.now();
    try {
      this.deps.db.transaction(() => {
        change();
        this.deps.audit.insert({ at: now, actor: 'admin', action, result: 'ok', detail });
      })();
    } catch (err) {
      const code = err instanceof MeshError ? err.code : 'MESH_E_INTERNAL';
      this.deps.audit.insert({ at: now, actor: 'admin', action, result: code, detail: (err as Error).message });
      throw err;
    }
  }

  async prepare(): Promise<Generation> {
    this.requireNo('prepared', 'a prepared CA already exists; activate it first (meshctl ca rotate activate)');
    this.requireNo('previous', 'the previous root is still in the bundle; retire it first (meshctl ca rotate retire)');
    const row = await this.createGenerated('prepared');
    this.step('ca.rotate.prepare', 'new root added to the bundle', () => {
      this.deps.ca.insert(row);
      this.deps.ca.bumpBundleSequence();
    });
    await this.reload();
    this.announce();
    return this.inState('prepared');
  }

  /** Imports an operator's CA (a root, or an intermediate with its chain) as the prepared generation. */
  async importCa(certPem: string, keyPem: string, chainPem: string): Promise<Generation> {
    this.requireNo('prepared', 'a prepared CA already exists; activate it first (meshctl ca rotate activate)');
    this.requireNo('previous', 'the previous root is still in the bundle; retire it first (meshctl ca rotate retire)');
    const now = this.deps.clock.now();
    const label = `import-${generationLabel(now)}`;
    let cert: X509Certificate;
    let key: KeyObject;
    let ski: Buffer | undefined;
    let uris: string[];
    try {
      cert = new X509Certificate(certPem);
      key = createPrivateKey(keyPem);
      ski = subjectKeyIdentifier(cert.raw);
      uris = uriSans(cert);
    } catch (err) {
      throw new MeshError('MESH_E_CA_IMPORT_INVALID', `the imported certificate or key cannot be read: ${(err as Error).message}`, {
        cause: err,
      });
    }
    if (ski === undefined) {
      throw new MeshError(
        'MESH_E_CA_IMPORT_INVALID',
        'the imported certificate has no subjectKeyIdentifier extension; every certificate the CA issues names it as its authority key identifier. Reissue the CA certificate with one (openssl: -addext subjectKeyIdentifier=hash)',
      );
    }
    if (!cert.checkPrivateKey(key))
      throw new MeshError('MESH_E_CA_IMPORT_INVALID', 'the imported key does not belong to the imported certificate');
    try {
      // The CA signs with this key (an operator root signs our signing CA; an intermediate signs SVIDs).
      signatureAlgorithmFor(key);
    } catch (err) {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      throw new MeshError(
        'MESH_E_CA_IMPORT_INVALID',
        `the imported key type ${key.asymmetricKeyType}${curve ? ` (${curve})` : ''} cannot sign here; use ECDSA P-256, Ed25519 or RSA`,
        { cause: err },
      );
    }
    for (const uri of uris) {
      if (uri !== `spiffe://${this.deps.trustDomain}`) {
        throw new MeshError('MESH_E_CA_IMPORT_INVALID', `the imported CA carries SPIFFE ID ${uri}, not spiffe://${this.deps.trustDomain}`);
      }
    }
    // Loaded here, not at start: only imports build chains with @peculiar/x509.
    const { isSelfSigned, issuerPath } = await import('./import-chain.js');
    const selfSigned = await isSelfSigned(cert);
    // Check the chain before the key is copied: a refused import leaves no key file behind.
    const issuers = selfSigned ? [] : await issuerPath(cert, chainPem);
    // Every CA on the path (CA:true, keyCertSign, pathLen, validity); under an imported root the mesh adds its signing CA.
    checkImportPath([{ cert, given: 'the imported certificate' }, ...issuers], now, selfSigned ? 1 : 0);
    const chain = issuers.map((i) => i.cert);
    const keyFile = path.join('ca', `${label}.key`);
    await writePrivateKey(path.join(this.deps.dataDir, keyFile), key, { overwrite: false });
    let row: Omit<GenerationRow, 'id' | 'activated_at' | 'retired_at'>;
    if (selfSigned) {
      // An operator root: the control plane keeps its own signing CA under it.
      const signer = newKeyPair();
      const signerKeyFile = path.join('ca', `${label}-signer.key`);
      await writePrivateKey(path.join(this.deps.dataDir, signerKeyFile), signer.privateKey, { overwrite: false });
      const { createIntermediate } = await import('./ca-certificates.js');
      const signerDer = await createIntermediate(this.deps.trustDomain, label, now, cert, key, signer.publicKey, SIGNER_TTL_MS);
      const signerPem = toPem(signerDer);
      row = {
        state: 'prepared',
        source: 'imported',
        root_pem: cert.toString(),
        signer_pem: signerPem,
        chain_pem: '',
        signer_key_file: signerKeyFile,
        root_key_file: keyFile,
        created_at: now,
      };
    } else {
      const root = chain.at(-1) as X509Certificate;
      row = {
        state: 'prepared',
        source: 'imported',
        root_pem: root.toString(),
        signer_pem: cert.toString(),
        chain_pem: chain
          .slice(0, -1)
          .map((c) => c.toString())
          .join(''),
        signer_key_file: keyFile,
        root_key_file: null,
        created_at: now,
      };
    }
    this.step('ca.import', `${selfSigned ? 'root' : 'intermediate'} ${cert.subject.replace(/\n/g, ', ')}`, () => {
      this.deps.ca.insert(row);
      this.deps.ca.bumpBundleSequence();
    });
    await this.reload();
    this.announce();
    return this.inState('prepared');
  }

  async activate(): Promise<Generation> {
    const prepared = this.generations.find((g) => g.state === 'prepared');
    if (prepared === undefined)
      throw new MeshError('MESH_E_CA_ROTATION_STATE', 'there is no prepared CA to activate; run meshctl ca rotate prepare first');
    const current = this.active();
    const now = this.deps.clock.now();
    this.step('ca.rotate.activate', `generation ${prepared.id} signs; generation ${current.id} is previous`, () => {
      this.deps.ca.setState(current.id, 'previous', now);
      this.deps.ca.setState(prepared.id, 'active', now);
      this.deps.ca.bumpBundleSequence();
    });
    await this.reload();
    this.announce();
    return this.active();
  }

  async retire(force: boolean): Promise<{ retired: number; unexpired: number }> {
    const previous = this.generations.find((g) => g.state === 'previous');
    if (previous === undefined)
      throw new MeshError('MESH_E_CA_ROTATION_STATE', 'there is no previous root to retire; activate a prepared CA first');
    const now = this.deps.clock.now();
    const unexpired = this.deps.certs.unexpiredCount(previous.id, now);
    // Another CA (Istio) signing under an exported intermediate of this root would lose the VMs' trust.
    const exported = this.deps.exports?.unexpiredUnder(previous.id, now) ?? [];
    if ((unexpired > 0 || exported.length > 0) && !force) {
      const reasons = [];
      if (unexpired > 0) reasons.push(`${unexpired} unexpired certificate(s) still chain to the previous root`);
      if (exported.length > 0)
        reasons.push(
          `exported intermediate(s) ${exported.map((x) => `${x.id} (${x.kind})`).join(', ')} still chain to the previous root and the CAs using them would no longer be trusted; export a new one (meshctl ca export-intermediate) and install it there first`,
        );
      const message = `${reasons.join('; ')}; wait until they expire or are renewed, or use --force`;
      this.deps.audit.insert({ at: now, actor: 'admin', action: 'ca.rotate.retire', result: 'MESH_E_CA_ROOT_IN_USE', detail: message });
      throw new MeshError('MESH_E_CA_ROOT_IN_USE', message, {
        details: { unexpired, ...(exported.length > 0 ? { exportedIntermediates: exported.map((x) => x.id) } : {}) },
      });
    }
    this.step(
      'ca.rotate.retire',
      `generation ${previous.id} removed from the bundle${force && unexpired > 0 ? ` (forced, ${unexpired} unexpired)` : ''}`,
      () => {
        this.deps.ca.setState(previous.id, 'retired', now);
        this.deps.ca.bumpBundleSequence();
      },
    );
    await this.reload();
    this.announce();
    return { retired: previous.id, unexpired };
  }

  private inState(state: Generation['state']): Generation {
    const gen = this.generations.find((g) => g.state === state);
    if (gen === undefined) throw new MeshError('MESH_E_INTERNAL', `no ${state} generation after the change`);
    return gen;
  }

  private requireNo(state: Generation['state'], message: string): void {
    if (this.generations.some((g) => g.state === state)) throw new MeshError('MESH_E_CA_ROTATION_STATE', message, { details: { state } });
  }
}
