/**
 * The bundle watch on a fake clock and a fake control plane: connected on the
 * first answer, a changed bundle saved and trusted by a new client, a failed
 * watch reopened with backoff on a new client, the first answer after a
 * failure reported as a recovery, and nothing left running after stop.
 */
import t from 'tap';
import { createBundleWatch } from '../../../agent/identity/bundle-watch.js';
import type { BundleUpdate, ClientOptions } from '../../../agent/identity/cp-client.js';
import { createControlPlaneConnection } from '../../../agent/identity/cp-connection.js';
import { MeshError } from '../../../lib/errors.js';
import { createLogger } from '../../../lib/logger.js';
import { FakeClock } from '../../fakes/clock.js';
import { type FakeClient, FakeControlPlane } from '../../fakes/control-plane-client.js';
import { flush } from '../../support/flush.js';
import { createTestCa } from '../../support/test-ca.js';

const BACKOFF = { initialMs: 1_000, maxMs: 8_000 };

function setup() {
  const clock = new FakeClock(Date.now());
  const fake = new FakeControlPlane(clock);
  const connection = createControlPlaneConnection({ address: 'cp:1', trustDomain: 'example.org', connect: fake.connect });
  const saved: string[] = [];
  const lines: string[] = [];
  let changes = 0;
  let recoveries = 0;
  const node = { chainPem: 'node chain', keyPem: 'node key' };
  const watch = createBundleWatch({
    connection,
    clock,
    log: createLogger({ sink: { write: (line) => lines.push(line) }, clock }),
    backoff: BACKOFF,
    random: () => 1,
    node: () => node,
    rootsPem: fake.rootsPem,
    save: async (pem) => {
      saved.push(pem);
    },
    onChange: () => changes++,
    onRecovered: () => recoveries++,
  });
  return { clock, fake, connection, watch, saved, lines, node, changes: () => changes, recoveries: () => recoveries };
}

t.test('connects with the node credentials and the held bundle; connected on the first answer', async (t) => {
  const { fake, watch, saved, changes, node } = setup();
  t.equal(watch.status().controlPlane.state, 'connecting');
  t.equal(watch.reconnect(), undefined);
  t.match(fake.lastClient()?.options, { node, bundlePem: fake.rootsPem });
  t.equal(fake.openWatches(), 1);
  await flush();
  t.same(watch.status().controlPlane, { state: 'connected' });
  t.match(watch.status().bundle, { sequence: 1, roots: 1 });
  t.equal(watch.status().bundle.updatedAt, undefined, 'the same roots are not a change');
  t.same(saved, [], 'nothing to save');
  t.equal(changes(), 0);
  t.equal(fake.clients.length, 1, 'no reconnect for the same roots');

  fake.pushBundle();
  t.equal(watch.status().bundle.sequence, 2, 'the sequence follows');
  t.equal(changes(), 0);
  watch.stop();
});

t.test('a changed bundle is saved, trusted by a new client, and reported', async (t) => {
  const { clock, fake, watch, saved, changes } = setup();
  watch.reconnect();
  await flush();
  const next = fake.rootsPem + (await createTestCa('example.org')).bundlePem;
  clock.advance(5_000);
  fake.pushBundle(next);
  t.same(saved, [next], 'saved');
  t.equal(watch.rootsPem(), next);
  t.match(watch.status().bundle, { roots: 2, sequence: 2, updatedAt: clock.now() });
  t.equal(changes(), 1, 'onChange fired');
  t.equal(fake.clients.length, 2, 'reconnected');
  t.equal(fake.lastClient()?.options.bundlePem, next, 'trusting the new roots');
  t.ok(fake.clients[0]?.closed, 'the old client is closed');
  t.equal(fake.openWatches(), 1, 'one watch, on the new client');
  t.equal(watch.status().controlPlane.state, 'connecting', 'until the new watch answers');
  await flush();
  t.equal(watch.status().controlPlane.state, 'connected');
  t.equal(changes(), 1);
  watch.stop();
});

t.test('a failed watch is reopened with backoff on a new client; the first answer after is a recovery', async (t) => {
  const { clock, fake, watch, lines, recoveries } = setup();
  watch.reconnect();
  await flush();
  fake.down = true;
  fake.failWatches();
  t.match(watch.status().controlPlane, { state: 'failing', lastError: /^MESH_E_CONTROLPLANE_UNAVAILABLE: / });
  t.equal(fake.clients.length, 1);
  clock.advance(999);
  t.equal(fake.clients.length, 1, 'not before the backoff');
  clock.advance(1);
  t.equal(fake.clients.length, 2, 'reopened on a new client after 1 s');
  await flush();
  t.equal(watch.status().controlPlane.state, 'failing', 'still down');
  clock.advance(1_999);
  t.equal(fake.clients.length, 2);
  clock.advance(1);
  t.equal(fake.clients.length, 3, 'then after 2 s');
  await flush();
  t.equal(recoveries(), 0);

  fake.down = false;
  clock.advance(4_000);
  await flush();
  t.same(watch.status().controlPlane, { state: 'connected' });
  t.equal(recoveries(), 1, 'recovered once');
  t.equal(fake.clients.slice(0, -1).filter((c) => !c.closed).length, 0, 'every old client closed');
  t.ok(lines.some((l) => l.includes('bundle watch failed; reopening')));

  // Failures start again from the first backoff step.
  fake.failWatches();
  clock.advance(1_000);
  t.equal(fake.clients.length, 5);
  watch.stop();
});

t.test('an error or a bundle from a watch on a replaced client is ignored', async (t) => {
  const clock = new FakeClock(Date.now());
  const fake = new FakeControlPlane(clock);
  // Keeps each watch's callbacks, so a stale stream can still speak after it was replaced.
  const callbacks: Array<{ onBundle: (b: BundleUpdate) => void; onError: (e: MeshError) => void }> = [];
  const connect = (options: ClientOptions) => {
    const client = fake.connect(options);
    const original = client.watchBundle;
    const watchBundle: FakeClient['watchBundle'] = (onBundle, onError) => {
      callbacks.push({ onBundle, onError });
      return original(onBundle, onError);
    };
    return Object.assign(client, { watchBundle });
  };
  const saved: string[] = [];
  const watch = createBundleWatch({
    connection: createControlPlaneConnection({ address: 'cp:1', trustDomain: 'example.org', connect }),
    clock,
    log: createLogger({ sink: { write: () => {} } }),
    backoff: BACKOFF,
    node: () => ({ chainPem: 'c', keyPem: 'k' }),
    rootsPem: fake.rootsPem,
    save: async (pem) => {
      saved.push(pem);
    },
    onChange: () => {},
  });
  watch.reconnect();
  await flush();
  watch.reconnect();
  await flush();
  t.equal(callbacks.length, 2);
  callbacks[0]?.onError(new MeshError('MESH_E_CONTROLPLANE_UNAVAILABLE', 'late'));
  callbacks[0]?.onBundle({ trustDomain: 'example.org', rootsPem: (await createTestCa('example.org')).bundlePem, sequence: 9 });
  t.same(watch.status().controlPlane, { state: 'connected' }, 'the stale error is ignored');
  t.match(watch.status().bundle, { sequence: 1, roots: 1 }, 'the stale bundle is ignored');
  t.same(saved, []);
  t.equal(clock.pending(), 0, 'no reconnect scheduled');
  callbacks[1]?.onError(new MeshError('MESH_E_CONTROLPLANE_UNAVAILABLE', 'now'));
  t.match(watch.status().controlPlane, { state: 'failing', lastError: /now/ }, 'the current watch failing does count');
  watch.stop();
});

t.test('unusable credentials: the error is returned and a reconnect is scheduled; stop cancels it', async (t) => {
  const { clock, fake, watch } = setup();
  fake.connectError = new Error('damaged key');
  const error = watch.reconnect();
  t.match(error, { code: 'MESH_E_CERT_INVALID', message: /damaged key/ });
  t.match(watch.status().controlPlane, { state: 'failing', lastError: /damaged key/ });
  t.equal(clock.pending(), 1, 'a retry is scheduled');
  fake.connectError = undefined;
  clock.advance(1_000);
  await flush();
  t.equal(watch.status().controlPlane.state, 'connected', 'the retry connected');

  fake.failWatches();
  t.equal(clock.pending(), 1);
  watch.stop();
  t.equal(clock.pending(), 0, 'no timer left after stop');
  clock.advance(60_000);
  t.equal(fake.clients.length, 1, 'no reconnect after stop (the first connect threw)');
  t.equal(fake.openWatches(), 0);
});
