/**
 * stop() at any moment leaves no Envoy process and resolves (issue 10,
 * section 1): during start() before the spawn (writing the bootstrap, reading
 * the version), between the spawn and the admin address, during a
 * validation, during a hot restart (before and after the child's spawn),
 * during a cold restart, during a backoff (with an old epoch still retiring),
 * during a crash restart, and during the drain. start() racing stop() ends
 * stopped. Each moment is reached through the Envoy fake's gates, never by
 * waiting on real time.
 */
import t from 'tap';
import { BINARY, BOOTSTRAP, harness, inBackground, stopLeavesNothing } from '../../support/supervisor-harness.js';

t.test('stop() when never started resolves at once', async (t) => {
  const h = harness(t);
  await h.supervisor.stop();
  t.equal(h.supervisor.status().state, 'stopped');
  t.same(h.host.children, []);
});

t.test('stop() during start(), before the spawn (writing the bootstrap): nothing is ever spawned', async (t) => {
  const h = harness(t);
  let open: () => void = () => {};
  h.host.files.writeGate = new Promise<void>((resolve) => {
    open = resolve;
  });
  const starting = inBackground(h.supervisor.start());
  t.equal(await h.host.files.nextWrite(), 0, 'writing the bootstrap of epoch 0');
  const stopping = h.supervisor.stop();
  t.equal(h.supervisor.status().state, 'draining');
  open();
  await t.rejects(starting, { code: 'MESH_E_PROCESS_START', message: /stop\(\) was called first/ });
  await stopLeavesNothing(t, h, stopping);
  t.same(h.host.of('envoy'), [], 'no Envoy was spawned');
});

t.test('stop() during start() while `envoy --version` runs: it is killed, no Envoy is spawned', async (t) => {
  const h = harness(t);
  h.host.holdVersion = true;
  const starting = inBackground(h.supervisor.start());
  const version = await h.host.next('version');
  const stopping = h.supervisor.stop();
  t.same(version.signalNames(), ['SIGKILL']);
  await t.rejects(starting, { code: 'MESH_E_PROCESS_START' });
  await stopLeavesNothing(t, h, stopping);
  t.same(h.host.of('envoy'), []);
});

t.test('stop() between the spawn and the admin address: Envoy is terminated, start() fails', async (t) => {
  const h = harness(t);
  h.host.writesAdminAddress = false;
  const starting = inBackground(h.supervisor.start());
  const envoy = await h.host.next('envoy');
  t.equal(h.supervisor.status().state, 'starting');
  const stopping = h.supervisor.stop();
  await t.rejects(starting, { code: 'MESH_E_PROCESS_START', message: /stop\(\) was called first/ });
  await stopLeavesNothing(t, h, stopping);
  t.same(envoy.signalNames(), ['SIGTERM'], 'no drain (no admin API yet): SIGTERM at once');
});

t.test('stop() between the spawn and the admin address, Envoy ignoring SIGTERM: SIGKILL after 5 s', async (t) => {
  const h = harness(t);
  h.host.writesAdminAddress = false;
  const starting = inBackground(h.supervisor.start());
  const envoy = await h.host.next('envoy');
  envoy.ignoreTerm = true;
  const began = h.clock.now();
  await stopLeavesNothing(t, h);
  await t.rejects(starting, { code: 'MESH_E_PROCESS_START' });
  t.same(envoy.signals, [
    { signal: 'SIGTERM', at: began },
    { signal: 'SIGKILL', at: began + 5_000 },
  ]);
});

t.test('start() racing stop() ends stopped, in either order', async (t) => {
  const h = harness(t);
  const starting = h.supervisor.start();
  const stopping = h.supervisor.stop();
  await t.rejects(starting, { code: 'MESH_E_PROCESS_START' });
  await stopLeavesNothing(t, h, stopping);

  await h.supervisor.start();
  const stopping2 = h.supervisor.stop();
  await t.rejects(h.supervisor.start(), { code: 'MESH_E_PROCESS_START', message: /Envoy is stopping/ });
  await stopLeavesNothing(t, h, stopping2);
  t.equal(h.host.of('envoy').length, 1, 'a start() during the stop does not bring Envoy back');
});

t.test('stop() during a validation: the validator is killed, the running epoch drained and stopped', async (t) => {
  const h = harness(t);
  await h.supervisor.start();
  h.host.holdValidation = true;
  const reloading = inBackground(h.supervisor.reload({ bootstrap: { ...BOOTSTRAP, v: 1 } }));
  const validator = await h.host.next('validate');
  const stopping = h.supervisor.stop();
  t.same(validator.signalNames(), ['SIGKILL']);
  await t.rejects(reloading, { code: 'MESH_E_ENVOY_RELOAD', message: /stopped during the validation/ });
  await stopLeavesNothing(t, h, stopping);
  t.ok(h.host.adminCalls.includes('POST 127.0.0.1:15000/drain_listeners?graceful'), 'the serving epoch was drained');
});

t.test('stop() during a hot restart, the child waiting for its admin API: parent and child are stopped', async (t) => {
  const h = harness(t);
  await h.supervisor.start();
  h.host.serverInfoGate = new Promise<void>(() => {});
  const reloading = inBackground(h.supervisor.reload({ bootstrap: { ...BOOTSTRAP, x: 1 } }));
  const child = await h.host.next('envoy');
  t.equal(h.supervisor.status().state, 'hot-restarting');
  const stopping = h.supervisor.stop();
  await t.rejects(reloading, { code: 'MESH_E_ENVOY_RELOAD', message: /stopped during the hot restart/ });
  await stopLeavesNothing(t, h, stopping);
  t.same(child.signalNames(), ['SIGTERM']);
  t.same(h.host.of('envoy')[0]?.signalNames(), ['SIGTERM']);
});

t.test('stop() during a hot restart before the child is spawned (reading a new binary version)', async (t) => {
  const h = harness(t);
  await h.supervisor.start();
  h.host.holdVersion = true;
  h.host.files.identities.set(BINARY, '2:2:2');
  const reloading = inBackground(h.supervisor.reload({ binary: BINARY }));
  const version = await h.host.next('version');
  t.equal(h.supervisor.status().state, 'hot-restarting');
  const stopping = h.supervisor.stop();
  await t.rejects(reloading, { code: 'MESH_E_ENVOY_RELOAD' });
  await stopLeavesNothing(t, h, stopping);
  t.ok(version.exited, 'the version run was killed');
  t.equal(h.host.of('envoy').length, 1, 'the child was never spawned');
});

t.test('stop() during a cold restart', async (t) => {
  const h = harness(t);
  await h.supervisor.start();
  h.host.failNext = true;
  await t.rejects(h.supervisor.reload({ bootstrap: { ...BOOTSTRAP, y: 1 } }));
  const [old] = h.host.of('envoy');
  if (old) old.ignoreTerm = true;
  const terminated = old?.nextSignal();
  const reloading = inBackground(h.supervisor.reload({ bootstrap: { ...BOOTSTRAP, y: 2 } }));
  t.equal(await terminated, 'SIGTERM', 'the cold restart stops the old epoch first');
  t.equal(h.supervisor.status().state, 'starting', 'cold-restarting: status says starting');
  t.same(old?.signalNames(), ['SIGTERM']);
  const stopping = h.supervisor.stop();
  await t.rejects(reloading, { code: 'MESH_E_ENVOY_RELOAD', message: /stopped during the cold restart/ });
  await stopLeavesNothing(t, h, stopping);
  t.same(old?.signalNames(), ['SIGTERM', 'SIGTERM', 'SIGKILL'], 'the old epoch ignoring SIGTERM got SIGKILL');
  t.equal(h.host.of('envoy').length, 2, 'no epoch 0 was started after the stop');
});

t.test('stop() during a backoff, with an old epoch still retiring: the restart is cancelled, the old epoch stopped', async (t) => {
  const h = harness(t);
  await h.supervisor.start();
  t.equal(await h.supervisor.reload({ bootstrap: { ...BOOTSTRAP, x: 1 } }), 'hot-restarted');
  const [old, current] = h.host.of('envoy');
  if (old) old.ignoreTerm = true;
  current?.exit(1, null);
  t.equal(h.supervisor.status().state, 'backoff');
  t.same(old?.signalNames(), ['SIGTERM'], 'the old epoch holding the base id is stopped too');
  await stopLeavesNothing(t, h);
  t.equal(h.supervisor.status().nextRestartAt, undefined);
  await h.clock.advanceAsync(60_000);
  t.equal(h.host.of('envoy').length, 2, 'no restart after stop()');
});

t.test('stop() during a crash restart (the new epoch 0 not up yet)', async (t) => {
  const h = harness(t);
  await h.supervisor.start();
  h.host.writesAdminAddress = false;
  h.host.of('envoy')[0]?.exit(1, null);
  const respawned = h.host.next('envoy');
  h.clock.advance(100);
  await respawned;
  t.equal(h.supervisor.status().state, 'starting');
  await stopLeavesNothing(t, h);
});

t.test('stop() during the drain: a second stop() waits for the same end', async (t) => {
  const h = harness(t);
  await h.supervisor.start();
  h.host.active = [1];
  const first = h.supervisor.stop();
  t.equal(h.supervisor.status().state, 'draining');
  const second = h.supervisor.stop();
  await stopLeavesNothing(
    t,
    h,
    Promise.all([first, second]).then(() => {}),
  );
  t.equal(h.events.filter((e) => e.kind === 'stopped').length, 1);
});
