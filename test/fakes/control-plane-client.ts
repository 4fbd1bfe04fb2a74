/**
 * A control plane in memory, behind the agent's ControlPlaneClient interface,
 * for unit tests: it signs the CSRs it gets with a real throwaway CA
 * (test/support/test-ca.ts) at the injected clock's time, so the agent's
 * checks (exact SPIFFE ID, key matches, chain) run on real certificates.
 *
 * Tests steer it: `down` makes every call and watch fail as unavailable,
 * `refused` IDs are not authorized, `hold` parks answers until release(),
 * and pushBundle()/failWatches() drive the open bundle watches. It records
 * every client made (with the credentials it was made with, and whether it
 * was closed) and every call.
 */
import { X509Certificate } from 'node:crypto';
import type {
  BundleUpdate,
  ClientOptions,
  ControlPlaneClient,
  PolicyWatchHandlers,
  PolicyWatchRequest,
  Svid,
} from '../../agent/identity/cp-client.js';
import { type NodeIdentity, saveNodeIdentity } from '../../agent/identity/identity-store.js';
import { signCsr } from '../../controlplane/ca/leaf-signer.js';
import type { Clock } from '../../lib/clock.js';
import { MeshError } from '../../lib/errors.js';
import type { PolicySet } from '../../lib/policy/schema.js';
import { toPem } from '../../lib/x509/pem.js';
import { createTestCa, type TestCa } from '../support/test-ca.js';

export const FAKE_TRUST_DOMAIN = 'example.org';
export const FAKE_NODE_ID = `spiffe://${FAKE_TRUST_DOMAIN}/mesh/node/n1`;

export interface FakeClient extends ControlPlaneClient {
  readonly options: ClientOptions;
  closed: boolean;
}

export interface FakePolicyWatch {
  readonly client: FakeClient;
  readonly request: PolicyWatchRequest;
  readonly handlers: PolicyWatchHandlers;
}

interface Watch {
  readonly client: FakeClient;
  readonly onBundle: (bundle: BundleUpdate) => void;
  readonly onError: (err: MeshError) => void;
}

/** One throwaway CA for every fake that is not given its own (making one takes a few ms of WebCrypto). */
const DEFAULT_CA = await createTestCa(FAKE_TRUST_DOMAIN);

type FakeMethod = 'renewNode' | 'signWorkload' | 'attestKubernetes';

export class FakeControlPlane {
  readonly ca: TestCa;
  down = false;
  readonly refused = new Set<string>();
  /** While true, answers wait for release(). */
  hold = false;
  svidTtlMs = 3_600_000;
  nodeSvidTtlMs = 3_600_000;
  rootsPem: string;
  sequence = 1;
  /** Thrown by connect() while set (unusable credentials). */
  connectError: Error | undefined;
  readonly clients: FakeClient[] = [];
  readonly calls: Array<{ method: FakeMethod; spiffeId: string; at: number }> = [];
  /** The tokens of every AttestKubernetes call, in order. */
  readonly attestedTokens: string[][] = [];
  private readonly watches = new Set<Watch>();
  /** Open Policy.Watch streams, and every request ever made (in order). */
  readonly policyWatches = new Set<FakePolicyWatch>();
  readonly policyRequests: PolicyWatchRequest[] = [];
  private held: Array<() => void> = [];

  constructor(
    private readonly clock: Clock,
    ca: TestCa = DEFAULT_CA,
  ) {
    this.ca = ca;
    this.rootsPem = ca.bundlePem;
  }

  /** A client factory with the signature of connectControlPlane. */
  readonly connect = (options: ClientOptions): FakeClient => {
    if (this.connectError !== undefined) throw this.connectError;
    const client: FakeClient = {
      options,
      closed: false,
      join: async () => {
        throw new MeshError('MESH_E_INTERNAL', 'the fake control plane does not join');
      },
      renewNode: (csr) => this.answer('renewNode', FAKE_NODE_ID, csr, this.nodeSvidTtlMs),
      attestKubernetes: (tokens, csr) => {
        this.attestedTokens.push([...tokens]);
        return this.answer('attestKubernetes', FAKE_NODE_ID, csr, this.nodeSvidTtlMs);
      },
      signWorkload: (spiffeId, csr) => this.answer('signWorkload', spiffeId, csr, this.svidTtlMs),
      getBundle: async () => this.bundle(),
      watchBundle: (onBundle, onError) => {
        const watch: Watch = { client, onBundle, onError };
        this.watches.add(watch);
        queueMicrotask(() => {
          if (!this.watches.has(watch)) return;
          if (this.down) this.fail(watch, this.unavailable());
          else watch.onBundle(this.bundle());
        });
        return () => this.watches.delete(watch);
      },
      watchPolicy: (request, handlers) => {
        const watch: FakePolicyWatch = { client, request, handlers };
        this.policyWatches.add(watch);
        this.policyRequests.push(request);
        queueMicrotask(() => {
          if (!this.policyWatches.has(watch)) return;
          if (this.down) {
            this.policyWatches.delete(watch);
            handlers.onError(this.unavailable());
          } else handlers.onOpen?.();
        });
        return () => this.policyWatches.delete(watch);
      },
      close: () => {
        client.closed = true;
      },
    };
    this.clients.push(client);
    return client;
  };

  /** Writes a node identity for FAKE_NODE_ID into <dataDir>/identity, as `mesh-agent join` would. */
  async joinNode(dataDir: string): Promise<NodeIdentity> {
    const { chainPem, keyPem } = this.ca.issue(FAKE_NODE_ID, this.nodeSvidTtlMs);
    const identity = {
      controlPlane: 'fake:1',
      trustDomain: FAKE_TRUST_DOMAIN,
      spiffeId: FAKE_NODE_ID,
      keyPem,
      chainPem,
      bundlePem: this.rootsPem,
    };
    await saveNodeIdentity(dataDir, identity);
    return identity;
  }

  /** The latest client made. */
  lastClient(): FakeClient | undefined {
    return this.clients.at(-1);
  }

  openWatches(): number {
    return this.watches.size;
  }

  /** Sends the bundle (new roots if given, with the next sequence) to every open watch. */
  pushBundle(rootsPem?: string): void {
    if (rootsPem !== undefined) this.rootsPem = rootsPem;
    this.sequence += 1;
    for (const watch of [...this.watches]) watch.onBundle(this.bundle());
  }

  /** Fails every open watch (a control plane that went away). */
  failWatches(err: MeshError = this.unavailable()): void {
    for (const watch of [...this.watches]) this.fail(watch, err);
  }

  /** Sends a policy set to every open policy watch. */
  pushPolicy(set: PolicySet): void {
    for (const watch of [...this.policyWatches]) watch.handlers.onUpdate(set);
  }

  /** Fails every open policy watch. */
  failPolicyWatches(err: MeshError = this.unavailable()): void {
    for (const watch of [...this.policyWatches]) {
      this.policyWatches.delete(watch);
      watch.handlers.onError(err);
    }
  }

  /** Lets every held answer go. */
  release(): void {
    const held = this.held;
    this.held = [];
    for (const go of held) go();
  }

  heldCalls(): number {
    return this.held.length;
  }

  private bundle(): BundleUpdate {
    return { trustDomain: FAKE_TRUST_DOMAIN, rootsPem: this.rootsPem, sequence: this.sequence };
  }

  private unavailable(): MeshError {
    return new MeshError('MESH_E_CONTROLPLANE_UNAVAILABLE', 'the fake control plane is down');
  }

  private fail(watch: Watch, err: MeshError): void {
    this.watches.delete(watch);
    watch.onError(err);
  }

  private async answer(method: FakeMethod, spiffeId: string, csr: Buffer, ttlMs: number): Promise<Svid> {
    this.calls.push({ method, spiffeId, at: this.clock.now() });
    if (this.hold) await new Promise<void>((resolve) => this.held.push(resolve));
    if (this.down) throw this.unavailable();
    if (this.refused.has(spiffeId)) throw new MeshError('MESH_E_NOT_AUTHORIZED', `the node may not hold ${spiffeId}`);
    const leaf = signCsr(this.ca.generation, { csr, spiffeId, ttlMs, now: this.clock.now() }, 64 * 1024);
    return {
      spiffeId,
      chainPem: toPem(leaf.der) + this.ca.generation.signerPem,
      serial: new X509Certificate(leaf.der).serialNumber,
      notAfter: leaf.notAfter,
      bundle: this.bundle(),
    };
  }
}
