/**
 * The control plane's own TLS identity: a server SVID
 * (spiffe://<td>/mesh/controlplane) from its own CA, kept fresh (renewed at
 * half its life and whenever the signing CA changes), plus the trust bundle,
 * fed to grpc-js through certificate providers so rotation needs no restart.
 */
import type {
  CaCertificateUpdateListener,
  CertificateProvider,
  IdentityCertificateUpdateListener,
} from '@grpc/grpc-js/build/src/certificate-provider.js';
import type { Clock, TimerHandle } from '../../lib/clock.js';
import { newKeyPair } from '../../lib/secret-files.js';
import { formatSpiffeId } from '../../lib/spiffe-id.js';
import { toPem } from '../../lib/x509/pem.js';
import { chainAfterLeaf, issueLeaf } from '../ca/authority.js';
import type { CaManager } from '../ca/ca-manager.js';
import type { CertRepo } from '../store/cert-repo.js';
import type { CommitBatcher } from '../store/commit-batcher.js';

export const SERVER_SVID_TTL_MS = 24 * 3600_000;

export class ServerIdentity implements CertificateProvider {
  private caListeners = new Set<CaCertificateUpdateListener>();
  private idListeners = new Set<IdentityCertificateUpdateListener>();
  private ca?: { caCertificate: Buffer };
  private identity?: { certificate: Buffer; privateKey: Buffer };
  private timer?: TimerHandle;
  private unsubscribe?: () => void;
  serial = '';

  constructor(private readonly deps: { ca: CaManager; certs: CertRepo; batcher: CommitBatcher; clock: Clock; trustDomain: string }) {}

  static spiffeId(trustDomain: string): string {
    return formatSpiffeId(trustDomain, 'mesh', 'controlplane').toString();
  }

  async start(): Promise<void> {
    await this.refresh();
    this.unsubscribe = this.deps.ca.onBundleChange(() => void this.refresh());
  }

  stop(): void {
    this.timer?.cancel();
    this.unsubscribe?.();
  }

  private async refresh(): Promise<void> {
    const { ca, clock } = this.deps;
    const gen = ca.active();
    const key = newKeyPair();
    const spiffeId = ServerIdentity.spiffeId(this.deps.trustDomain);
    const spki = key.publicKey.export({ type: 'spki', format: 'der' });
    const leaf = issueLeaf(gen, { spiffeId, spki, ttlMs: SERVER_SVID_TTL_MS, now: clock.now() });
    await this.deps.batcher.run(() =>
      this.deps.certs.insert({
        generation_id: gen.id,
        serial: leaf.serial,
        spiffe_id: spiffeId,
        node_name: null,
        kind: 'server',
        not_before: leaf.notBefore,
        not_after: leaf.notAfter,
        issued_at: clock.now(),
      }),
    );
    this.serial = leaf.serial;
    this.identity = {
      certificate: Buffer.from(toPem(leaf.der) + chainAfterLeaf(gen).join('')),
      privateKey: Buffer.from(key.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string),
    };
    this.ca = { caCertificate: Buffer.from(ca.bundle().roots.join('')) };
    for (const listener of this.idListeners) listener(this.identity);
    for (const listener of this.caListeners) listener(this.ca);
    this.timer?.cancel();
    this.timer = clock.setTimer((leaf.notAfter - clock.now()) / 2, () => void this.refresh());
  }

  addCaCertificateListener(listener: CaCertificateUpdateListener): void {
    this.caListeners.add(listener);
    // Deliver after grpc-js has registered its watcher: it adds the provider
    // listener first and ignores updates that arrive synchronously.
    queueMicrotask(() => this.ca && this.caListeners.has(listener) && listener(this.ca));
  }
  removeCaCertificateListener(listener: CaCertificateUpdateListener): void {
    this.caListeners.delete(listener);
  }
  addIdentityCertificateListener(listener: IdentityCertificateUpdateListener): void {
    this.idListeners.add(listener);
    queueMicrotask(() => this.identity && this.idListeners.has(listener) && listener(this.identity));
  }
  removeIdentityCertificateListener(listener: IdentityCertificateUpdateListener): void {
    this.idListeners.delete(listener);
  }
}
