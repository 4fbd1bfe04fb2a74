/**
 * The catalog watch against the real Consul: an upstream with 3 instances;
 * one instance's check critical -> the next CatalogView omits it; passing
 * again -> it is back. The delay from the Consul write to the new view is
 * measured and printed (speed targets belong to bench/catalog-watch).
 */
import t from 'tap';
import type { CatalogView } from '../../agent/discovery/catalog-view.js';
import { consulCatalogWatcher } from '../support/catalog-watcher.js';
import { startConsulDev } from '../support/consul.js';
import { httpGet, waitFor } from '../support/wait.js';

t.setTimeout(120_000);

t.test('3-instance upstream: critical drops out, passing comes back', async (t) => {
  const dev = await startConsulDev();
  t.teardown(() => dev.stop());
  const put = async (p: string, body?: unknown) => {
    const r = await httpGet(`http://${dev.httpAddr}${p}`, { method: 'PUT', body: body === undefined ? undefined : JSON.stringify(body) });
    if (r.status !== 200) throw new Error(`${p}: ${r.status} ${r.body}`);
  };
  for (let i = 1; i <= 3; i++) {
    await put('/v1/agent/service/register', {
      ID: `api-${i}`,
      Name: 'api',
      Address: `127.0.0.${i}`,
      Port: 9000 + i,
      Meta: { mesh_spiffe_id: 'spiffe://example.org/ns/default/sa/api', mesh_port: String(19000 + i), mesh_zone: 'z1' },
      TaggedAddresses: { mesh: { Address: `127.0.0.${i}`, Port: 19000 + i } },
      Weights: { Passing: 3, Warning: 1 },
      Check: { CheckID: `api-${i}-ttl`, Name: 'ttl', TTL: '10m', Status: 'passing' },
    });
  }
  const watcher = consulCatalogWatcher(dev, { datacenter: 'dc1', waitMs: 30_000, coalesceMs: 10 });
  t.teardown(() => watcher.stop());
  const views: Array<{ at: number; view: CatalogView }> = [];
  watcher.onView((view) => views.push({ at: performance.now(), view }));
  watcher.setServices(['api']);
  await waitFor(async () => (watcher.view().services.api?.instances.length === 3 ? true : undefined), { what: '3 instances' });
  const first = watcher.view().services.api?.instances ?? [];
  t.same(
    first.map((i) => [i.id, i.address, i.appPort, i.meshPort, i.spiffeId, i.weight, i.datacenter, i.zone, i.health]),
    [1, 2, 3].map((i) => [
      `api-${i}`,
      `127.0.0.${i}`,
      9000 + i,
      19000 + i,
      'spiffe://example.org/ns/default/sa/api',
      3,
      'dc1',
      'z1',
      'passing',
    ]),
  );

  const change = async (path: string, expect: number) => {
    const before = views.length;
    const start = performance.now();
    await put(path);
    const written = performance.now();
    await waitFor(async () => (views.length > before && watcher.view().services.api?.instances.length === expect ? true : undefined), {
      intervalMs: 2,
      what: `${expect} instances`,
    });
    const seen = views.find((v, i) => i >= before && v.view.services.api?.instances.length === expect);
    return { fromStart: (seen?.at ?? 0) - start, fromAck: (seen?.at ?? 0) - written, newViews: views.length - before };
  };
  const down = await change('/v1/agent/check/fail/api-2-ttl', 2);
  t.same(
    watcher.view().services.api?.instances.map((i) => i.id),
    ['api-1', 'api-3'],
    'the next view omits the critical instance',
  );
  t.equal(down.newViews, 1, 'one new view for the change');
  const up = await change('/v1/agent/check/pass/api-2-ttl', 3);
  t.same(
    watcher.view().services.api?.instances.map((i) => i.id),
    ['api-1', 'api-2', 'api-3'],
    'back when passing again',
  );
  t.comment(
    `delay Consul write -> new CatalogView: critical ${down.fromStart.toFixed(1)} ms (${down.fromAck.toFixed(1)} ms after the write returned), passing ${up.fromStart.toFixed(1)} ms (${up.fromAck.toFixed(1)} ms)`,
  );
  t.ok(down.fromStart > 0 && up.fromStart > 0, 'delays measured');
});
