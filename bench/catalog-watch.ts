/**
 * bench/catalog-watch: 1,000 services x 10 instances in a real Consul dev
 * agent; the agent's catalog watcher follows 50 of them; one instance's health
 * is flipped 200 times. Prints p50/p99/max of: Consul write -> new
 * CatalogView, Consul write -> a raw blocking query's return (Consul's own
 * latency), and the difference (the agent's overhead; target p99 < 100 ms),
 * plus RSS. Run: npm run bench -- catalog-watch
 */
import type { CatalogView } from '../agent/discovery/catalog-view.js';
import { consulCatalogWatcher } from '../test/support/catalog-watcher.js';
import { startConsulDev } from '../test/support/consul.js';
import { pct, rssMb } from './lib/stats.js';
import { formatTable } from './lib/table.js';
import { checkOp, INSTANCES, serviceName as name, registerCatalog, SERVICES, txn as xdsTxn } from './lib/xds-fixtures.js';

const WATCHED = 50;
const FLIPS = 200;
const COALESCE_MS = 25;

const dev = await startConsulDev();
const base = `http://${dev.httpAddr}`;
const txn = (ops: unknown[]) => xdsTxn(base, ops);

try {
  const setupStart = performance.now();
  await registerCatalog(base);
  const setupMs = performance.now() - setupStart;

  const rssBefore = rssMb();
  const watcher = consulCatalogWatcher(dev, { waitMs: 60_000, coalesceMs: COALESCE_MS });
  const watched = Array.from({ length: WATCHED }, (_, i) => name(i * (SERVICES / WATCHED)));
  let waiter: { service: string; count: number; resolve: (at: number) => void } | undefined;
  watcher.onView((view: CatalogView) => {
    if (waiter !== undefined && view.services[waiter.service]?.instances.length === waiter.count) {
      const w = waiter;
      waiter = undefined;
      w.resolve(performance.now());
    }
  });
  watcher.setServices(watched);
  while (!watched.every((s) => watcher.view().services[s]?.instances.length === INSTANCES)) await new Promise((r) => setTimeout(r, 20));

  const viewDelays: number[] = [];
  const rawDelays: number[] = [];
  const overhead: number[] = [];
  for (let flip = 0; flip < FLIPS; flip++) {
    const service = watched[flip % WATCHED] as string;
    const critical = Math.floor(flip / WATCHED) % 2 === 0;
    const index = (await fetch(`${base}/v1/health/service/${service}`)).headers.get('X-Consul-Index');
    const raw = fetch(`${base}/v1/health/service/${service}?index=${index}&wait=30s`).then(async (r) => {
      await r.arrayBuffer();
      return performance.now();
    });
    const seen = new Promise<number>((resolve) => (waiter = { service, count: critical ? INSTANCES - 1 : INSTANCES, resolve }));
    const t0 = performance.now();
    await txn([checkOp(0, service, critical ? 'critical' : 'passing')]);
    const [tView, tRaw] = await Promise.all([seen, raw]);
    viewDelays.push(tView - t0);
    rawDelays.push(tRaw - t0);
    overhead.push(tView - tRaw);
  }
  const rssAfter = rssMb();
  watcher.stop();

  const row = (metric: string, v: number[]) => [metric, pct(v, 50), pct(v, 99), Math.max(...v)];
  process.stdout.write(
    `catalog-watch: ${SERVICES} services x ${INSTANCES} instances (registered in ${(setupMs / 1000).toFixed(1)} s), ` +
      `${WATCHED} watched upstreams, ${FLIPS} health flips, coalesce window ${COALESCE_MS} ms\n\n`,
  );
  process.stdout.write(
    `${formatTable(
      ['delay (ms)', 'p50', 'p99', 'max'],
      [
        row('Consul write -> new CatalogView', viewDelays),
        row('Consul write -> raw blocking query returns', rawDelays),
        row('CatalogView after raw query (agent overhead)', overhead),
      ],
    )}\n\n`,
  );
  process.stdout.write(
    `${formatTable(
      ['memory', 'RSS MB'],
      [
        ['bench process (agent watcher + driver) before watching', rssBefore],
        ['bench process after 200 flips', rssAfter],
        ['consul dev agent', rssMb(dev.pid)],
      ],
    )}\n\n`,
  );
  const p99 = pct(overhead, 99);
  process.stdout.write(`target: p99 agent overhead < 100 ms: ${p99 < 100 ? 'met' : 'NOT met'} (${p99.toFixed(1)} ms)\n`);
} finally {
  await dev.stop();
}
