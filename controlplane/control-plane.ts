/**
 * Composition of the control plane: store, CA, identity service, the TLS
 * Identity API on `listen` and the Admin API on <dataDir>/admin.sock.
 */
import { chmod, rm } from 'node:fs/promises';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { createCertificateProviderServerCredentials } from '@grpc/grpc-js/build/src/server-credentials.js';
import type { Clock } from '../lib/clock.js';
import { MeshError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { contract } from '../lib/proto/contract.js';
import { ensurePrivateDir } from '../lib/secret-files.js';
import { packageVersion } from '../lib/version.js';
import { adminHandlers } from './api/admin-api.js';
import { identityHandlers } from './api/identity-api.js';
import { nodeStatusHandlers } from './api/node-status-api.js';
import { installPeerCertificateCache } from './api/peer-cert-cache.js';
import { policyServiceDefinition, policyWatchHandlers } from './api/policy-watch-api.js';
import { ServerIdentity } from './api/server-identity.js';
import { serverTimeInterceptor } from './api/server-time.js';
import { RateLimiter } from './attestation/rate-limiter.js';
import { CaManager } from './ca/ca-manager.js';
import { IntermediateExporter } from './ca/intermediate-export.js';
import { createLeafSigner, defaultSigningWorkers } from './ca/leaf-signer.js';
import type { ControlplaneConfig } from './config/schema.js';
import { IdentityService } from './identity-service.js';
import { kubeAttestationHook } from './kube/attestation-hook.js';
import type { CatalogSync } from './kube/catalog-sync.js';
import { createControlPlaneMetrics } from './metrics/controlplane-metrics.js';
import { startMetricsServer } from './metrics/metrics-server.js';
import { nodeRevokedError, PolicyFanout } from './policy/policy-fanout.js';
import { PolicyRepo } from './policy/policy-repo.js';
import type { PolicyStore } from './policy/policy-store.js';
import { NodeStatusBook } from './status/node-status-book.js';
import type { NodeSyncSource } from './status/node-sync-view.js';
import { AuditRepo } from './store/audit-repo.js';
import { CaRepo } from './store/ca-repo.js';
import { CertRepo } from './store/cert-repo.js';
import { CommitBatcher } from './store/commit-batcher.js';
import { type Db, openDb, schemaVersion } from './store/db.js';
import { ExportRepo } from './store/export-repo.js';
import { NodeRepo } from './store/node-repo.js';

/** How long stop() lets calls in flight finish before closing every stream. */
const STOP_GRACE_MS = 2_000;
export const MAX_MESSAGE_BYTES = 64 * 1024;
export const ADMIN_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;
/** sockaddr_un.sun_path holds 108 bytes including the terminating NUL. */
export const MAX_SOCKET_PATH = 107;

export interface ControlPlane {
  /** host:port the Identity API listens on (the real port when 0 was asked). */
  readonly address: string;
  /** host:port of GET /metrics when metrics.listen is set. */
  readonly metricsAddress?: string;
  readonly adminSocket: string;
  readonly db: Db;
  readonly ca: CaManager;
  readonly identity: IdentityService;
  readonly serverIdentity: ServerIdentity;
  /** Policy resources (what the Admin API applies and the Policy.Watch stream reads). */
  readonly policies: PolicyStore;
  /** The Policy.Watch streams (fan-out of the policy store to agents). */
  readonly policyFanout: PolicyFanout;
  /** The latest status report of each node (NodeStatus.Report). */
  readonly nodeStatus: NodeStatusBook;
  /** The Kubernetes catalog sync, when controlplane.yaml has `kubernetes.sync`. */
  readonly kubeSync?: CatalogSync;
  stop(): Promise<void>;
}

function bind(server: grpc.Server, address: string, credentials: grpc.ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) =>
    server.bindAsync(address, credentials, (err, port) =>
      err ? reject(new MeshError('MESH_E_CONFIG_INVALID', `cannot listen on ${address}: ${err.message}`, { cause: err })) : resolve(port),
    ),
  );
}

export interface ControlPlaneDeps {
  clock: Clock;
  logger: Logger;
  /** The policy resources (Admin API, Policy.Watch); default: the SQLite repo in the control plane's database. */
  policies?: PolicyStore;
}

export async function startControlPlane(config: ControlplaneConfig, deps: ControlPlaneDeps): Promise<ControlPlane> {
  const { clock, logger } = deps;
  const startedAt = clock.now();
  // Checked before anything is opened or bound, so a refusal leaves no listener or open database behind.
  const adminSocket = path.join(config.dataDir, 'admin.sock');
  if (Buffer.byteLength(adminSocket) > MAX_SOCKET_PATH) {
    throw new MeshError(
      'MESH_E_CONFIG_INVALID',
      `dataDir ${config.dataDir} is too long for the admin socket path (${Buffer.byteLength(adminSocket)} bytes; Unix sockets allow ${MAX_SOCKET_PATH}); choose a shorter dataDir`,
      { details: { path: 'dataDir' } },
    );
  }
  // Before the database opens: a kubeconfig that cannot be loaded leaves nothing open.
  const kubeAttestation = await kubeAttestationHook(config, clock, logger);
  await ensurePrivateDir(config.dataDir);
  const db = openDb(path.join(config.dataDir, 'controlplane.db'));
  // What start has opened so far, to close (newest first) when a later step fails: without it a failed
  // listen left the signing workers and timers running, and `mesh-controlplane run` printed the error but
  // never exited.
  const opened: Array<() => unknown> = [() => db.close()];
  const closeOpened = async () => {
    for (const close of opened.splice(0).reverse())
      await Promise.resolve()
        .then(close)
        .catch(() => undefined);
  };
  const step = async <T>(run: () => Promise<T>): Promise<T> => {
    try {
      return await run();
    } catch (err) {
      await closeOpened();
      throw err;
    }
  };
  const audit = new AuditRepo(db);
  const certs = new CertRepo(db);
  const nodes = new NodeRepo(db);
  const caRepo = new CaRepo(db);
  const stored = caRepo.getMeta('trust_domain');
  if (stored !== undefined && stored !== config.trustDomain) {
    await closeOpened();
    throw new MeshError('MESH_E_CONFIG_INVALID', `${config.dataDir} belongs to trust domain ${stored}, not ${config.trustDomain}`, {
      details: { stored, configured: config.trustDomain },
    });
  }
  if (stored === undefined) caRepo.setMeta('trust_domain', config.trustDomain);

  const exports = new ExportRepo(db);
  const ca = new CaManager({
    db,
    ca: caRepo,
    certs,
    audit,
    exports,
    dataDir: config.dataDir,
    trustDomain: config.trustDomain,
    clock,
    logger: logger.child({ component: 'ca' }),
  });
  await step(() => ca.init());
  installPeerCertificateCache();
  const metrics = createControlPlaneMetrics({ processMetrics: true, version: packageVersion() });
  const batcher = new CommitBatcher(db, { onCommit: metrics.recordCommit });
  const signer = createLeafSigner({
    workers: config.signingWorkers ?? defaultSigningWorkers(),
    maxCsrBytes: config.maxCsrBytes,
    logger: logger.child({ component: 'signer' }),
  });
  opened.push(
    () => batcher.close(),
    () => signer.close(),
  );
  const identity = new IdentityService({
    config: {
      trustDomain: config.trustDomain,
      svidTtlMs: config.svidTtl,
      nodeSvidTtlMs: config.nodeSvidTtl,
      maxTokenTtlMs: config.maxTokenTtl,
      ...kubeAttestation?.identityConfig,
    },
    db,
    ca,
    signer,
    nodes,
    certs,
    audit,
    batcher,
    limiter: new RateLimiter(config.rateLimit, clock),
    clock,
    logger: logger.child({ component: 'identity' }),
  });
  const policies =
    deps.policies ??
    new PolicyRepo({
      db,
      audit,
      trustDomain: config.trustDomain,
      clock,
      logger: logger.child({ component: 'policy' }),
    });
  const serverIdentity = new ServerIdentity({ ca, certs, batcher, clock, trustDomain: config.trustDomain });
  await step(() => serverIdentity.start());
  opened.push(() => serverIdentity.stop());

  const { Identity, Admin, Policy, NodeStatus } = contract();
  const options = { 'grpc.max_receive_message_length': MAX_MESSAGE_BYTES, 'grpc.max_send_message_length': 4 * 1024 * 1024 };
  // Every answer of the network API carries the server's clock (doctor's clock-skew check).
  const server = new grpc.Server({ ...options, interceptors: [serverTimeInterceptor(clock)] });
  const kube = kubeAttestation?.attestor(identity);
  server.addService(
    Identity.service,
    identityHandlers({ identity, ca, logger: logger.child({ component: 'api' }), metrics, ...(kube === undefined ? {} : { kube }) }),
  );
  const policyService = policyServiceDefinition(Policy.service);
  const policyLogger = logger.child({ component: 'policy-stream' });
  const policyFanout = new PolicyFanout({ store: policies, encode: policyService.encode, logger: policyLogger });
  opened.push(
    () => policyFanout.stop(),
    () => server.forceShutdown(),
  );
  const nodeStatus = new NodeStatusBook();
  identity.onRevoked((node) => {
    policyFanout.endNode(node, nodeRevokedError(node));
    nodeStatus.forget(node);
  });
  metrics.setPolicyStreams(() => policyFanout.stats().streams);
  server.addService(policyService.definition, policyWatchHandlers({ identity, fanout: policyFanout, logger: policyLogger, metrics }));
  const staleAfterMs = config.nodeStatus.staleAfter;
  server.addService(
    NodeStatus.service,
    nodeStatusHandlers({ identity, nodes, book: nodeStatus, clock, staleAfterMs, logger: logger.child({ component: 'node-status' }) }),
  );
  const sync: NodeSyncSource = {
    book: nodeStatus,
    expectedPolicyRevision: (node) => policyFanout.revisionFor(node),
    now: () => clock.now(),
    staleAfterMs,
    startedAt,
  };
  const port = await step(() =>
    bind(server, config.listen, createCertificateProviderServerCredentials(serverIdentity, serverIdentity, false)),
  );
  const host = config.listen.slice(0, config.listen.lastIndexOf(':'));
  const address = `${host}:${port}`;

  // Policy applies can be large; the admin socket is local and mode 0600, so it takes more than the network API.
  const admin = new grpc.Server({ ...options, 'grpc.max_receive_message_length': ADMIN_MAX_MESSAGE_BYTES });
  admin.addService(
    Admin.service,
    adminHandlers({
      identity,
      ca,
      nodes,
      audit,
      db,
      policies,
      sync,
      exporter: new IntermediateExporter({
        db,
        ca: caRepo,
        exports,
        audit,
        manager: ca,
        dataDir: config.dataDir,
        trustDomain: config.trustDomain,
        clock,
        logger: logger.child({ component: 'ca' }),
      }),
      logger: logger.child({ component: 'admin' }),
      status: () => {
        const all = nodes.nodes();
        return {
          trust_domain: config.trustDomain,
          listen: address,
          version: packageVersion(),
          nodes_active: all.filter((n) => n.status === 'active').length,
          nodes_revoked: all.filter((n) => n.status === 'revoked').length,
          certificates: certs.count(),
          bundle_sequence: ca.bundle().sequence,
          active_generation: ca.active().id,
          schema_version: schemaVersion(db),
          started_at_ms: startedAt,
        };
      },
    }),
  );
  opened.push(
    () => admin.forceShutdown(),
    () => rm(adminSocket, { force: true }),
  );
  await step(async () => {
    await rm(adminSocket, { force: true });
    const umask = process.umask(0o177);
    try {
      await bind(admin, `unix:${adminSocket}`, grpc.ServerCredentials.createInsecure());
    } finally {
      process.umask(umask);
    }
    await chmod(adminSocket, 0o600);
  });
  const metricsListen = config.metrics.listen;
  const metricsServer = metricsListen === undefined ? undefined : await step(() => startMetricsServer(metricsListen, metrics));
  logger.info('control plane ready', {
    listen: address,
    adminSocket,
    trustDomain: config.trustDomain,
    ...(metricsServer === undefined ? {} : { metrics: metricsServer.address }),
  });

  let stopped = false;
  let kubeSync: CatalogSync | undefined;
  const cp: ControlPlane = {
    get kubeSync() {
      return kubeSync;
    },
    address,
    ...(metricsServer === undefined ? {} : { metricsAddress: metricsServer.address }),
    adminSocket,
    db,
    ca,
    identity,
    serverIdentity,
    policies,
    policyFanout,
    nodeStatus,
    async stop() {
      if (stopped) return;
      stopped = true;
      await kubeSync?.stop();
      serverIdentity.stop();
      policyFanout.stop();
      // Calls in flight get a grace period; bundle watches never end by themselves, so then force.
      const graceful = (srv: typeof server) =>
        new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            srv.forceShutdown();
            resolve();
          }, STOP_GRACE_MS);
          srv.tryShutdown(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      await Promise.all([graceful(server), graceful(admin), metricsServer?.close()]);
      await rm(adminSocket, { force: true });
      await signer.close();
      await batcher.close();
      db.close();
    },
  };
  const k8s = config.kubernetes;
  if (k8s?.sync !== undefined) {
    try {
      // Loaded only when configured (it brings @kubernetes/client-node).
      const { startCatalogSync } = await import('./kube/catalog-sync.js');
      kubeSync = await startCatalogSync(k8s, k8s.sync, {
        policies,
        trustDomain: config.trustDomain,
        clock,
        logger,
        registry: metrics.registry,
      });
    } catch (err) {
      await cp.stop();
      throw err;
    }
  }
  return cp;
}
