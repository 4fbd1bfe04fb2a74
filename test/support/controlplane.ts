/**
 * A real control plane for tests: in-process (real SQLite, real gRPC over TLS,
 * real admin socket) on a free port in a temp folder, or as a child process
 * (`mesh-controlplane run`, for kill -9 tests).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { connectControlPlane } from '../../agent/identity/cp-client.js';
import { joinMesh } from '../../agent/identity/enroll.js';
import { loadNodeIdentity } from '../../agent/identity/identity-store.js';
import { connectAdmin } from '../../controlplane/cli/admin-client.js';
import { controlplaneSchema } from '../../controlplane/config/schema.js';
import { type ControlPlane, startControlPlane } from '../../controlplane/control-plane.js';
import type { PolicyStore } from '../../controlplane/policy/policy-store.js';
import type { Clock } from '../../lib/clock.js';
import { systemClock } from '../../lib/clock.js';
import { validateConfig } from '../../lib/config-file.js';
import { createLogger, type Logger } from '../../lib/logger.js';
import { newKeyPair } from '../../lib/secret-files.js';
import { createCsr } from '../../lib/x509/csr-builder.js';
import { toPem } from '../../lib/x509/pem.js';
import { repoRoot } from '../../scripts/repo-root.js';
import { type ManagedChild, startChild } from './child.js';
import { waitFor } from './wait.js';

export interface TestControlPlane {
  cp: ControlPlane;
  dataDir: string;
  trustDomain: string;
  /** Every log line the control plane wrote. */
  logs: string[];
  bundlePem(): string;
  token(node: string, allow?: string[], ttlMs?: number): string;
  stop(): Promise<void>;
}

export async function startTestControlPlane(
  options: {
    trustDomain?: string;
    svidTtl?: string;
    nodeSvidTtl?: string;
    rateLimit?: { perSecond: number; burst: number };
    clock?: Clock;
    dataDir?: string;
    /** The policy store Policy.Watch streams (test/fakes/policy-store.ts); default: none. */
    policies?: PolicyStore;
    /** metrics.listen (GET /metrics), e.g. 127.0.0.1:0; default: none. */
    metricsListen?: string;
    /** nodeStatus.staleAfter (a duration such as "3s"); default the schema's. */
    staleAfter?: string;
    /** The `kubernetes` section of controlplane.yaml (kubeconfig, cluster, sync, attestation); default: none. */
    kubernetes?: Record<string, unknown>;
  } = {},
): Promise<TestControlPlane> {
  const dataDir = options.dataDir ?? (await mkdtemp(path.join(os.tmpdir(), 'mesh-cp-')));
  const trustDomain = options.trustDomain ?? 'example.org';
  const config = validateConfig(
    controlplaneSchema,
    {
      dataDir,
      listen: '127.0.0.1:0',
      trustDomain,
      ...(options.svidTtl ? { svidTtl: options.svidTtl } : {}),
      ...(options.nodeSvidTtl ? { nodeSvidTtl: options.nodeSvidTtl } : {}),
      rateLimit: options.rateLimit ?? { perSecond: 100_000, burst: 100_000 },
      ...(options.staleAfter ? { nodeStatus: { staleAfter: options.staleAfter } } : {}),
      log: { level: 'debug' },
      ...(options.metricsListen === undefined ? {} : { metrics: { listen: options.metricsListen } }),
      ...(options.kubernetes === undefined ? {} : { kubernetes: options.kubernetes }),
    },
    'test',
  );
  const logs: string[] = [];
  const logger: Logger = createLogger({ level: 'debug', sink: { write: (line) => logs.push(line) } });
  const cp = await startControlPlane(config, {
    clock: options.clock ?? systemClock,
    logger,
    ...(options.policies === undefined ? {} : { policies: options.policies }),
  });
  return {
    cp,
    dataDir,
    trustDomain,
    logs,
    bundlePem: () => cp.ca.bundle().roots.join(''),
    token: (node, allow = [], ttlMs = 600_000) => cp.identity.createToken({ node, allow, ttlMs }).token,
    async stop() {
      await cp.stop();
      if (options.dataDir === undefined) await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** A CSR for a fresh P-256 key, with the key. */
export async function freshCsr() {
  const key = newKeyPair();
  return { key, csr: await createCsr(key.privateKey, key.publicKey) };
}

/** `count` fresh CSRs, made before a test sends them together. */
export function freshCsrs(count: number) {
  return Promise.all(Array.from({ length: count }, () => freshCsr()));
}

/** An Identity API client without a node identity (for Join). */
export function anonymousClient(t: TestControlPlane) {
  return connectControlPlane({ address: t.cp.address, trustDomain: t.trustDomain, bundlePem: t.bundlePem() });
}

export { connectAdmin };

export interface ControlPlaneProcess {
  child: ManagedChild;
  address: string;
  dataDir: string;
  trustDomain: string;
}

/**
 * `node dist/controlplane/main.js run` as a child process (needs `npm run build`); extraArgs go after the others (e.g. --config FILE).
 * `where`: the address it listens on (default 127.0.0.1) and how it is started (default startChild; a netns host's spawn).
 */
export async function spawnControlPlane(
  dataDir: string,
  trustDomain = 'example.org',
  port = 0,
  extraArgs: readonly string[] = [],
  where: { host?: string; start?: (command: string, args: readonly string[]) => ManagedChild } = {},
): Promise<ControlPlaneProcess> {
  const main = path.join(repoRoot(), 'dist', 'controlplane', 'main.js');
  const start = where.start ?? startChild;
  const child = start(process.execPath, [
    main,
    'run',
    '--data-dir',
    dataDir,
    '--listen',
    `${where.host ?? '127.0.0.1'}:${port}`,
    '--trust-domain',
    trustDomain,
    ...extraArgs,
  ]);
  try {
    const address = await waitFor(
      async () => {
        if (child.exited()) throw new Error(`mesh-controlplane exited:\n${child.output()}`);
        const match = /"listen":"([^"]+)"/.exec(child.output());
        return match?.[1];
      },
      { timeoutMs: 20_000, what: 'mesh-controlplane to listen' },
    );
    return { child, address, dataDir, trustDomain };
  } catch (err) {
    const output = child.output();
    await child.stop(2_000);
    throw new Error(`${(err as Error).message}\n--- mesh-controlplane output ---\n${output.slice(-3000)}`);
  }
}

/** Joins a node (its files in dataDir) and returns an mTLS client with its node SVID. */
export async function joinedClient(t: TestControlPlane, node: string, allow: string[], dataDir: string) {
  await joinNode(joinSource(t), node, allow, dataDir);
  const identity = await loadNodeIdentity(dataDir);
  return connectControlPlane({
    address: t.cp.address,
    trustDomain: t.trustDomain,
    bundlePem: identity.bundlePem,
    node: { chainPem: identity.chainPem, keyPem: identity.keyPem },
  });
}

/** Where a node joins: a control plane's address and trust domain, a join token for a node, its trust bundle. */
export interface JoinSource {
  readonly address: string;
  readonly trustDomain: string;
  token(node: string, allow: string[]): Promise<string>;
  bundlePem(): Promise<string>;
}

/** An in-process control plane (startTestControlPlane) as a JoinSource. */
export function joinSource(t: TestControlPlane): JoinSource {
  return {
    address: t.cp.address,
    trustDomain: t.trustDomain,
    token: async (node, allow) => t.token(node, allow),
    bundlePem: async () => t.bundlePem(),
  };
}

/** A control plane run as a child (spawnControlPlane) as a JoinSource: tokens and the bundle come through its admin socket. */
export function adminJoinSource(p: Pick<ControlPlaneProcess, 'address' | 'dataDir' | 'trustDomain'>): JoinSource {
  const call = async <T>(method: string, request?: Record<string, unknown>): Promise<T> => {
    const admin = connectAdmin(p.dataDir);
    try {
      return await admin.call<T>(method, request);
    } finally {
      admin.close();
    }
  };
  return {
    address: p.address,
    trustDomain: p.trustDomain,
    token: async (node, allow) => (await call<{ token: string }>('CreateToken', { node_name: node, allow, ttl_ms: 600_000 })).token,
    bundlePem: async () => (await call<{ roots: Buffer[] }>('GetBundle')).roots.map((der) => toPem(der)).join(''),
  };
}

/** Joins `node` (allowed `allow`) as `mesh-agent join` does: its identity lands in dataDir. */
export async function joinNode(source: JoinSource, node: string, allow: string[], dataDir: string): Promise<void> {
  await joinMesh({ address: source.address, token: await source.token(node, allow), bundlePem: await source.bundlePem(), dataDir });
}
