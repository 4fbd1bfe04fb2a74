/** The mesh service list watch (transparent proxy) against the shared Consul fake, with a fake clock. */
import t from 'tap';
import { watchMeshServices } from '../../../agent/discovery/mesh-services-watch.js';
import { createLogger } from '../../../lib/logger.js';
import { FakeClock } from '../../fakes/clock.js';
import { FakeConsul } from '../../fakes/consul.js';
import { flush } from '../../support/flush.js';

const MESH = { mesh_spiffe_id: 'spiffe://example.org/ns/default/sa/x' };

function setup(initial: string[] = [], down = false) {
  const consul = new FakeConsul();
  consul.down = down;
  const clock = new FakeClock();
  const lines: string[] = [];
  const log = createLogger({ sink: { write: (l) => lines.push(l) }, clock });
  const changes: string[][] = [];
  const watch = watchMeshServices({
    client: consul,
    clock,
    log,
    backoff: { initialMs: 100, maxMs: 1000 },
    waitMs: 60000,
    initial,
    onChange: (names) => changes.push([...names]),
    random: () => 1,
  });
  t.teardown(() => watch.stop());
  return { consul, clock, lines, watch, changes };
}

t.test('lists services with a mesh instance only, and follows the catalog with blocking queries', async (t) => {
  const { consul, watch, changes } = setup();
  consul.setInstance({ service: 'api', serviceId: 'api-1', meta: MESH });
  consul.setInstance({ service: 'legacy', serviceId: 'legacy-1' });
  await flush();
  t.strictSame(changes, [['api']]);
  t.strictSame(watch.names(), ['api']);
  t.equal(consul.pendingQueries(), 1, 'a blocking query waits for the next change');
  consul.setInstance({ service: 'db', serviceId: 'db-1', meta: MESH });
  await flush();
  t.strictSame(watch.names(), ['api', 'db']);
  consul.setInstance({ service: 'legacy', serviceId: 'legacy-2' });
  await flush();
  t.equal(changes.length, 2, 'a change outside the mesh is no change of the list');
  consul.removeInstance('api', 'api-1');
  await flush();
  t.strictSame(changes.at(-1), ['db']);
  t.match(watch.state(), { healthy: true });
});

t.test('Consul down: the last known names stay, retried with backoff, resumed', async (t) => {
  const { consul, clock, lines, watch, changes } = setup(['api'], true);
  t.strictSame(watch.names(), ['api'], 'the initial names until Consul answers');
  await flush();
  t.match(watch.state(), { healthy: false, error: /fake consul is down/ });
  t.strictSame(watch.names(), ['api']);
  t.match(lines.join('\n'), /mesh service list watch failing; keeping the last known services/);
  consul.down = false;
  consul.setInstance({ service: 'api', serviceId: 'api-1', meta: MESH });
  consul.setInstance({ service: 'web', serviceId: 'web-1', meta: MESH });
  clock.advance(100);
  await flush();
  t.strictSame(changes, [['api', 'web']]);
  t.match(watch.state(), { healthy: true });
  t.match(lines.join('\n'), /mesh service list watch resumed/);
});

t.test('stop aborts the blocking query', async (t) => {
  const { consul, watch } = setup();
  await flush();
  t.equal(consul.pendingQueries(), 1);
  watch.stop();
  await flush();
  t.equal(consul.pendingQueries(), 0);
});
