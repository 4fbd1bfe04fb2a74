/**
 * The Envoy supervisor against the shared Envoy fake and the fake clock:
 * start, crash restarts with a doubling backoff and the reset after a stable
 * run, the drain before a stop, and the status. Hot restarts are in
 * supervisor-reload.test.ts, stop() at every moment in supervisor-stop.test.ts.
 */
import t from 'tap';
import { BINARY, BOOTSTRAP, harness } from '../../support/supervisor-harness.js';

t.test('start: epoch 0 with the right arguments, status once the admin address is written', async (t) => {
  const h = harness(t);
  await h.supervisor.start();
  const [envoy] = h.host.of('envoy');
  t.equal(h.host.of('envoy').length, 1);
  t.equal(envoy?.arg('-c'), '/var/lib/mesh/envoy/bootstrap-0.json');
  t.equal(envoy?.arg('--restart-epoch'), '0');
  t.equal(envoy?.arg('--base-id'), '77');
  t.equal(envoy?.arg('--admin-address-path'), '/var/lib/mesh/envoy/admin-address-0');
  t.equal(envoy?.arg('--concurrency'), '2', 'default concurrency');
  t.equal(envoy?.arg('--log-level'), 'warning', 'default log level');
  t.equal(envoy?.arg('--drain-time-s'), '1');
  t.equal(envoy?.arg('--parent-shutdown-time-s'), '6', 'default parent shutdown: drain time + 5 s');
  t.same(h.host.files.bootstraps.get(0), BOOTSTRAP, 'the bootstrap file holds the bootstrap');
  t.equal(h.host.files.prepared, 1, 'the work folder was prepared');
  t.same(h.supervisor.status(), {
    state: 'running',
    pid: envoy?.pid,
    epoch: 0,
    restarts: 0,
    version: '1.40.0',
    adminAddress: '127.0.0.1:15000',
  });
  t.same(
    h.events.map((e) => e.kind),
    ['started'],
  );
  await h.supervisor.start();
  t.equal(h.host.of('envoy').length, 1, 'a second start() does nothing');
  t.equal(h.host.of('version').length, 1, 'the version was read once');
});

t.test('an Envoy that exits during the first start backs off and restarts; start() is answered', async (t) => {
  const h = harness(t);
  h.host.writesAdminAddress = false;
  const starting = h.supervisor.start();
  const envoy = await h.host.next('envoy');
  envoy.exit(1, null, 'critical: cannot bind\n');
  await starting;
  const status = h.supervisor.status();
  t.equal(status.state, 'backoff', 'the agent keeps running; Envoy is restarted after a backoff');
  t.same(status.lastExit, { code: 1, signal: null, at: h.clock.now() });
  t.equal(status.restarts, 0);
  t.ok(h.logs.includes('Envoy exited unexpectedly; restarting after a backoff'), 'logged like any crash');
  h.host.writesAdminAddress = true;
  const started = h.next('started');
  h.clock.advance((status.nextRestartAt as number) - h.clock.now());
  await started;
  t.equal(h.supervisor.status().state, 'running', 'the restart serves');
  t.equal(h.supervisor.status().restarts, 1);
  await h.clock.runUntil(h.supervisor.stop());
  t.same(h.host.alive(), []);
});

t.test('an Envoy that hangs during the first start is killed after the start timeout and restarted with backoff', async (t) => {
  const h = harness(t, { startTimeoutMs: 2_000 });
  h.host.writesAdminAddress = false;
  const began = h.clock.now();
  await h.clock.runUntil(h.supervisor.start());
  const [envoy] = h.host.of('envoy');
  t.same(envoy?.signals, [{ signal: 'SIGKILL', at: began + 2_000 }]);
  t.equal(h.supervisor.status().state, 'backoff');
  await h.clock.runUntil(h.supervisor.stop());
  t.equal(h.supervisor.status().state, 'stopped');
  t.same(h.host.alive(), []);
});

t.test('start fails with a clear error when the binary cannot be read', async (t) => {
  const h = harness(t);
  h.host.files.missing.add(BINARY);
  await t.rejects(h.supervisor.start(), { code: 'MESH_E_PROCESS_START', message: /binary \/usr\/bin\/envoy cannot be read/ });
  t.same(h.host.children, [], 'nothing was spawned');
  t.equal(h.supervisor.status().state, 'stopped');
});

t.test('crash restarts back off, doubling up to the maximum', async (t) => {
  const h = harness(t);
  await h.supervisor.start();
  const delays: number[] = [];
  for (let i = 0; i < 6; i++) {
    h.host.of('envoy')[i]?.exit(1, null);
    const status = h.supervisor.status();
    t.equal(status.state, 'backoff');
    t.equal(status.pid, undefined, 'no pid while waiting');
    t.same(status.lastExit, { code: 1, signal: null, at: h.clock.now() });
    t.equal(status.restarts, i, 'restarts count restarts done, not crashes pending');
    const delay = (status.nextRestartAt as number) - h.clock.now();
    delays.push(delay);
    h.clock.advance(delay - 1);
    t.equal(h.supervisor.status().state, 'backoff', 'not restarted before the delay');
    const started = h.next('started');
    h.clock.advance(1);
    t.equal(h.supervisor.status().state, 'starting', 'restarting once the delay is over');
    await started;
    const envoys = h.host.of('envoy');
    t.equal(envoys.length, i + 2);
    t.equal(envoys[i + 1]?.arg('--restart-epoch'), '0', 'a crash restart is epoch 0');
    t.equal(h.supervisor.status().restarts, i + 1);
    t.equal(h.supervisor.status().pid, envoys[i + 1]?.pid);
  }
  t.same(delays, [100, 200, 400, 800, 1_000, 1_000]);
  t.same(
    h.events.slice(0, 4).map((e) => e.kind),
    ['started', 'exited', 'restarting', 'started'],
  );
  t.equal(h.events.find((e) => e.kind === 'exited')?.detail, 'exit code 1');
  t.equal(h.events.find((e) => e.kind === 'restarting')?.detail, 'in 100 ms');
  t.ok(h.logs.includes('Envoy exited unexpectedly; restarting after a backoff'));
  t.equal(h.host.of('version').length, 1, 'the same binary: the version is not read again');
});

t.test('a stable run resets the backoff', async (t) => {
  const h = harness(t, { stableAfterMs: 30_000 });
  await h.supervisor.start();
  const crashAndRestart = async (i: number) => {
    h.host.of('envoy')[i]?.exit(null, 'SIGSEGV');
    const delay = (h.supervisor.status().nextRestartAt as number) - h.clock.now();
    const started = h.next('started');
    h.clock.advance(delay);
    await started;
    return delay;
  };
  t.equal(await crashAndRestart(0), 100);
  t.equal(await crashAndRestart(1), 200);
  t.equal(await crashAndRestart(2), 400);
  h.clock.advance(29_999);
  t.equal(await crashAndRestart(3), 800, 'a run just short of stableAfterMs keeps doubling');
  h.clock.advance(30_000);
  t.equal(await crashAndRestart(4), 100, 'a stable run starts the backoff over');
  t.equal(h.supervisor.status().lastExit?.signal, 'SIGSEGV');
  t.equal(h.supervisor.status().restarts, 5);
});

t.test('a restart whose spawn fails is a crash like any other', async (t) => {
  const h = harness(t);
  await h.supervisor.start();
  h.host.spawnErrorNext = true;
  h.host.of('envoy')[0]?.exit(1, null);
  const restarting = h.next('restarting');
  h.clock.advance(100);
  t.equal((await restarting).detail, 'in 200 ms', 'backing off further');
  t.match(h.events.at(-2)?.detail, /exit code -2.*before writing its admin address/);
  const started = h.next('started');
  h.clock.advance(200);
  await started;
  t.equal(h.supervisor.status().restarts, 2);
});

t.test('reload while in backoff keeps the settings for the restart', async (t) => {
  const h = harness(t);
  await h.supervisor.start();
  h.host.of('envoy')[0]?.exit(1, null);
  const next = { ...BOOTSTRAP, z: 1 };
  t.equal(await h.supervisor.reload({ bootstrap: next }), 'unchanged');
  const started = h.next('started');
  h.clock.advance(100);
  await started;
  t.same(h.host.files.bootstraps.get(0), next, 'the restart used the new bootstrap');
});

t.test('stop(): drain, wait for connections, SIGTERM', async (t) => {
  const h = harness(t);
  await h.supervisor.start();
  h.host.active = [3, 1, 0];
  const began = h.clock.now();
  await h.clock.runUntil(h.supervisor.stop());
  const [envoy] = h.host.of('envoy');
  t.ok(h.host.adminCalls.includes('POST 127.0.0.1:15000/drain_listeners?graceful'), 'listeners drained through admin');
  t.equal(h.host.adminCalls.filter((c) => c.includes('/stats')).length, 3, 'polled until no connection was left');
  t.same(envoy?.signalNames(), ['SIGTERM']);
  t.equal((envoy?.signals[0]?.at as number) - began, 200, 'SIGTERM once no connection was left, before the drain time was over');
  t.same(h.supervisor.status(), {
    state: 'stopped',
    epoch: 0,
    restarts: 0,
    version: '1.40.0',
    lastExit: { code: null, signal: 'SIGTERM', at: envoy?.signals[0]?.at },
  });
  t.equal(h.events.at(-1)?.kind, 'stopped');
  t.equal(h.host.files.sharedMemoryRemovals, 1, 'the shared memory is removed after the final stop');
});

t.test('stop(): connections that stay open get drainTimeMs, a process ignoring SIGTERM gets SIGKILL after 5 s', async (t) => {
  const h = harness(t);
  await h.supervisor.start();
  h.host.active = [2];
  const [envoy] = h.host.of('envoy');
  if (envoy) envoy.ignoreTerm = true;
  const began = h.clock.now();
  const stopping = h.supervisor.stop();
  t.equal(h.supervisor.status().state, 'draining');
  await h.clock.runUntil(stopping);
  const [term, kill] = envoy?.signals ?? [];
  t.equal(term?.signal, 'SIGTERM');
  t.equal((term?.at as number) - began, 1_000, 'SIGTERM once drainTimeMs passed');
  t.equal(kill?.signal, 'SIGKILL');
  t.equal((kill?.at as number) - (term?.at as number), 5_000, 'SIGKILL 5 s after SIGTERM');
  t.equal(h.supervisor.status().state, 'stopped');
  t.ok(h.logs.includes('Envoy did not exit after SIGTERM; sending SIGKILL'));
});

t.test('after stop() resolved, start() starts again', async (t) => {
  const h = harness(t);
  await h.supervisor.start();
  await h.clock.runUntil(h.supervisor.stop());
  await h.supervisor.start();
  t.equal(h.supervisor.status().state, 'running');
  t.equal(h.host.of('envoy').length, 2);
  t.equal(h.host.alive().length, 1);
});

t.test('an event listener that throws does not disturb the supervisor', async (t) => {
  const h = harness(t);
  h.supervisor.onEvent(() => {
    throw new Error('listener bug');
  });
  await h.supervisor.start();
  t.equal(h.supervisor.status().state, 'running');
  t.ok(h.logs.includes('an Envoy event listener threw'));
});
