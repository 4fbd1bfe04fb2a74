/**
 * The control plane of bench/policy-fanout in its own process (so its RSS is
 * its own): the real control plane (TLS, node mTLS, SQLite for nodes and
 * certificates) with its SQLite policy store, driven over IPC:
 *   -> { tokens: N }             <- { tokens: string[] }
 *   -> { apply: documents[] }    <- { revision, returnedAtMs }   (store.apply returned)
 *   -> { rss: true }             <- { rssMb, streams, groups }
 * It prints nothing but warnings; its first message is { address, bundlePem }.
 * Not a benchmark by itself.
 */
import { controlplaneSchema } from '../../controlplane/config/schema.js';
import { startControlPlane } from '../../controlplane/control-plane.js';
import { systemClock } from '../../lib/clock.js';
import { validateConfig } from '../../lib/config-file.js';
import { createLogger } from '../../lib/logger.js';

type Request = { tokens: number } | { apply: unknown[] } | { rss: true } | { stop: true };

const dataDir = process.argv[2];
const trustDomain = process.argv[3] ?? 'bench.example';
if (dataDir === undefined || process.send === undefined) {
  process.stderr.write('usage: node policy-cp.js DATA_DIR [TRUST_DOMAIN] (forked with IPC by bench/policy-fanout)\n');
  process.exit(2);
}
const send = (message: unknown) => process.send?.(message);
const now = () => performance.timeOrigin + performance.now();

const config = validateConfig(
  controlplaneSchema,
  { dataDir, listen: '127.0.0.1:0', trustDomain, rateLimit: { perSecond: 1_000_000, burst: 1_000_000 }, log: { level: 'warn' } },
  'bench',
);
const logger = createLogger({
  level: process.env.MESH_BENCH_CP_LOG === 'info' ? 'info' : 'warn',
  sink: { write: (l) => process.stderr.write(`${l}\n`) },
});
// The control plane's own SQLite policy store: an apply returns once it is committed.
const cp = await startControlPlane(config, { clock: systemClock, logger });
const store = cp.policies;

process.on('message', (request: Request) => {
  if ('tokens' in request) {
    const tokens = Array.from(
      { length: request.tokens },
      (_, i) => cp.identity.createToken({ node: `bench-${i}`, allow: [], ttlMs: 600_000 }).token,
    );
    send({ tokens });
  } else if ('apply' in request) {
    const result = store.apply(request.apply, 'bench');
    send({ revision: result.revision, returnedAtMs: now() });
  } else if ('rss' in request) {
    global.gc?.();
    const stats = cp.policyFanout.stats();
    send({ rssMb: process.memoryUsage().rss / 1_048_576, streams: stats.streams, groups: stats.groups });
  } else if ('stop' in request) {
    void cp.stop().then(() => process.exit(0));
  }
});
send({ address: cp.address, bundlePem: cp.ca.bundle().roots.join('') });
