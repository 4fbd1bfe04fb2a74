import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import t from 'tap';
import type { CatalogView } from '../../../agent/discovery/catalog-view.js';
import { createCatalogWatcher } from '../../../agent/discovery/catalog-watch.js';
import type { ConsulClient, HealthEntry } from '../../../agent/discovery/consul-client.js';
import { createLogger } from '../../../lib/logger.js';
import { FakeClock } from '../../fakes/clock.js';
import { FakeConsul } from '../../fakes/consul.js';
import { flush } from '../../support/flush.js';

function setup(
  initial: Parameters<typeof createCatalogWatcher>[0]['initial'] = [],
  onAnswer?: Parameters<typeof createCatalogWatcher>[0]['onAnswer'],
) {
  const consul = new FakeConsul();
  const clock = new FakeClock();
  const lines: string[] = [];
  const log = createLogger({ sink: { write: (l) => lines.push(l) }, clock });
  const watcher = createCatalogWatcher({
    client: consul,
    clock,
    log,
    backoff: { initialMs: 100, maxMs: 1000 },
    waitMs: 60000,
    coalesceMs: 25,
    initial,
    random: () => 1,
    ...(onAnswer === undefined ? {} : { onAnswer }),
  });
  const views: CatalogView[] = [];
  watcher.onView((v) => views.push(v));
  return { consul, clock, lines, watcher, views };
}

t.test('watches upstreams, drops critical instances; a change after a quiet window at once, the burst after it coalesced', async (t) => {
  const { consul, clock, watcher, views } = setup();
  for (let i = 1; i <= 3; i++) {
    consul.setInstance({
      service: 'api',
      serviceId: `api-${i}`,
      node: `n${i}`,
      address: `10.0.0.${i}`,
      meta: { mesh_spiffe_id: 'spiffe://example.org/ns/default/sa/api', mesh_port: '19090', mesh_zone: 'z1', mesh_protocol: 'http' },
      taggedMeshPort: i === 3 ? 19999 : undefined,
      weight: 2,
    });
  }
  watcher.setServices(['api']);
  await flush();
  t.equal(views.length, 1, 'the first answer is published at once');
  clock.advance(25);
  t.equal(views.length, 1);
  const api = watcher.view().services.api;
  t.equal(api?.instances.length, 3);
  t.match(api?.instances[0], {
    id: 'api-1',
    node: 'n1',
    address: '10.0.0.1',
    appPort: 8080,
    meshPort: 19090,
    spiffeId: 'spiffe://example.org/ns/default/sa/api',
    protocol: 'http',
    weight: 2,
    datacenter: 'dc1',
    zone: 'z1',
    health: 'passing',
    source: undefined,
  });
  t.equal(api?.instances[2]?.meshPort, 19999, 'tagged address wins');
  t.ok(Object.isFrozen(watcher.view()) && Object.isFrozen(api?.instances), 'immutable');

  consul.setHealth('api', 'api-2', 'critical');
  await flush();
  t.equal(views.length, 2, 'a change after a quiet window is published at once, with no timer');
  t.equal(clock.pending(), 0);
  t.same(
    watcher.view().services.api?.instances.map((i) => i.id),
    ['api-1', 'api-3'],
  );
  consul.setHealth('api', 'api-3', 'warning');
  await flush();
  consul.setHealth('api', 'api-2', 'passing');
  await flush();
  t.equal(views.length, 2, 'not yet: inside the window of the last view');
  clock.advance(24);
  t.equal(views.length, 2, 'not yet');
  clock.advance(1);
  t.equal(views.length, 3, 'the burst after it gives one view, at the end of the window');
  t.same(
    watcher.view().services.api?.instances.map((i) => [i.id, i.health]),
    [
      ['api-1', 'passing'],
      ['api-2', 'passing'],
      ['api-3', 'warning'],
    ],
  );
  t.equal(watcher.view().version, 3);
  consul.kick();
  await flush();
  clock.advance(25);
  t.equal(views.length, 3, 'no change, no new view');
  clock.advance(100);
  consul.setHealth('api', 'api-1', 'critical');
  await flush();
  t.equal(views.length, 4, 'quiet again: at once');
  watcher.stop();
});

t.test('changes made in one synchronous run give one view; a stopped watcher publishes nothing', async (t) => {
  const { consul, clock, watcher, views } = setup([
    { name: 'a', instances: [], source: 'disk' },
    { name: 'b', instances: [], source: 'disk' },
  ]);
  consul.down = true;
  watcher.setServices(['a', 'b']);
  watcher.setServices(['a']);
  await flush();
  t.equal(views.length, 1, 'one view for both calls');
  t.same(Object.keys(watcher.view().services), ['a']);
  clock.advance(100);
  watcher.setServices([]);
  watcher.stop();
  await flush();
  t.equal(views.length, 1, 'nothing after stop');
  t.equal(watcher.view().version, 1, 'the removal queued before stop made no view');
});

t.test('adding and removing upstreams starts and stops watches without leaks', async (t) => {
  const { consul, clock, watcher } = setup();
  consul.setInstance({ service: 'a', serviceId: 'a-1' });
  consul.setInstance({ service: 'b', serviceId: 'b-1' });
  watcher.setServices(['a', 'b']);
  await flush();
  clock.advance(25);
  t.same(Object.keys(watcher.view().services), ['a', 'b']);
  t.equal(consul.pendingQueries(), 2);
  watcher.setServices(['b']);
  await flush();
  clock.advance(25);
  t.same(Object.keys(watcher.view().services), ['b']);
  t.equal(consul.pendingQueries(), 1, 'the blocking query of a was aborted');
  t.same(
    watcher.watches().map((w) => w.service),
    ['b'],
  );
  watcher.stop();
  t.equal(consul.pendingQueries(), 0);
});

t.test('Consul down: the last known view stays; resumes after a restart', async (t) => {
  const { consul, clock, lines, watcher, views } = setup();
  consul.setInstance({ service: 'api', serviceId: 'api-1' });
  watcher.setServices(['api']);
  await flush();
  clock.advance(25);
  const before = watcher.view();
  consul.down = true;
  consul.kick();
  await flush();
  t.match(watcher.watches(), [{ service: 'api', healthy: false, error: /down/ }]);
  for (let i = 0; i < 5; i++) {
    clock.advance(1000);
    await flush();
  }
  t.equal(watcher.view(), before, 'the view during the outage is the last known one');
  t.equal(lines.filter((l) => l.includes('catalog watch failing')).length, 1, 'logged once');
  consul.wipe();
  consul.setInstance({ service: 'api', serviceId: 'api-1' });
  consul.setInstance({ service: 'api', serviceId: 'api-2' });
  consul.down = false;
  clock.advance(1000);
  await flush();
  clock.advance(25);
  t.equal(watcher.view().services.api?.instances.length, 2, 'resumed with the restarted Consul (index went backwards)');
  t.ok(lines.some((l) => l.includes('catalog watch resumed')));
  t.ok(views.length >= 2);
  watcher.stop();
});

t.test('initial services from disk are shown until Consul answers', async (t) => {
  const instance = {
    id: 'api-1',
    node: 'n',
    address: '10.1.1.1',
    appPort: 1,
    meshPort: 2,
    spiffeId: '',
    protocol: 'tcp',
    tags: [],
    meta: {},
    weight: 1,
    datacenter: 'dc1',
    zone: '',
    health: 'passing' as const,
  };
  const { consul, clock, watcher } = setup([
    { name: 'api', instances: [instance], source: 'disk' },
    { name: 'old', instances: [], source: 'disk' },
  ]);
  consul.down = true;
  watcher.setServices(['api']);
  await flush();
  clock.advance(25);
  t.same(Object.keys(watcher.view().services), ['api'], 'only watched services');
  t.equal(watcher.view().services.api?.source, 'disk');
  t.equal(watcher.view().services.api?.instances[0]?.address, '10.1.1.1');
  consul.down = false;
  clock.advance(1000);
  await flush();
  clock.advance(25);
  t.equal(watcher.view().services.api?.source, 'consul');
  t.equal(watcher.view().services.api?.instances.length, 0, 'Consul is the truth once it answers');
  watcher.stop();
});

t.test('onAnswer: each blocking query ends changed, unchanged or error, with the time it took on the clock', async (t) => {
  const answers: Array<[string, number, string]> = [];
  const { consul, clock, watcher } = setup([], (service, ms, outcome) => answers.push([service, ms, outcome]));
  consul.setInstance({ service: 'api', serviceId: 'api-1', node: 'n1', address: '10.0.0.1', meta: {} });
  watcher.setServices(['api']);
  await flush();
  t.same(answers, [['api', 0, 'changed']], 'the first answer brings the instances');
  clock.advance(1500);
  consul.down = true;
  consul.setInstance({ service: 'api', serviceId: 'api-2', node: 'n2', address: '10.0.0.2', meta: {} });
  await flush();
  t.same(answers[1], ['api', 1500, 'error'], 'the blocked query failed after 1.5 s');
  watcher.stop();
});

t.test("a loop waiting on its next query keeps none of the previous answer's health entries", async (t) => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  let answered: WeakRef<object> | undefined;
  let asked = 0;
  const client: ConsulClient = {
    register: async () => {},
    deregister: async () => {},
    registeredIds: async () => new Set(),
    meshServices: () => new Promise(() => {}),
    healthService: (_service, query) => {
      asked++;
      if (asked > 1)
        return new Promise((_resolve, reject) =>
          query.signal?.addEventListener('abort', () => reject(new Error('aborted')), { once: true }),
        );
      const entries: HealthEntry[] = Array.from({ length: 10 }, (_, i) => ({
        node: `n${i}`,
        nodeAddress: `10.0.0.${i}`,
        datacenter: 'dc1',
        serviceId: `api-${i}`,
        service: 'api',
        address: `10.0.0.${i}`,
        port: 8080,
        tags: [],
        meta: { mesh_spiffe_id: 'spiffe://example.org/ns/default/sa/api', mesh_port: '19090' },
        weight: 1,
        taggedMeshPort: undefined,
        checks: [{ status: 'passing' }],
      }));
      answered = new WeakRef(entries);
      return Promise.resolve({ index: 7, entries });
    },
  };
  const clock = new FakeClock();
  const watcher = createCatalogWatcher({
    client,
    clock,
    log: createLogger({ sink: { write: () => {} }, clock }),
    backoff: { initialMs: 100, maxMs: 1000 },
    waitMs: 60000,
    coalesceMs: 25,
  });
  t.teardown(() => watcher.stop());
  watcher.setServices(['api']);
  await flush();
  t.equal(asked, 2, 'the loop waits on its second query');
  t.equal(watcher.view().services.api?.instances.length, 10, 'the first answer is in the view');
  gc();
  t.equal(answered?.deref(), undefined, "the first answer's entries were collected while the second query is open");
});
