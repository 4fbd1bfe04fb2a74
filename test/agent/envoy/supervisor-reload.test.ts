/**
 * reload() against the shared Envoy fake and the fake clock: validate first,
 * hot restart (epoch + 1, same base id; the old epoch leaving is no crash),
 * a binary replaced in place, a rejected bootstrap, a failing or hanging new
 * epoch (the old one keeps serving), the cold restart after a failed hot
 * restart, and reloads that meet a start or a crash.
 */
import t from 'tap';
import { FakeEnvoyHost } from '../../fakes/envoy.js';
import { BINARY, BOOTSTRAP, harness } from '../../support/supervisor-harness.js';

t.test('hot restart: validated first, then epoch + 1 with the same base id; the old epoch leaving is no crash', async (t) => {
  const h = harness(t, { parentShutdownMs: 3_000 });
  await h.supervisor.start();
  const [old] = h.host.of('envoy');
  const reordered = { admin: BOOTSTRAP.admin, node: BOOTSTRAP.node };
  t.equal(await h.supervisor.reload({ bootstrap: reordered }), 'unchanged', 'key order alone changes nothing');
  t.equal(await h.supervisor.reload({}), 'unchanged');
  t.equal(h.host.of('validate').length, 0);

  const next = { ...BOOTSTRAP, stats_config: { stats_tags: [] } };
  t.equal(await h.supervisor.reload({ bootstrap: next }), 'hot-restarted');
  t.same(h.host.of('validate')[0]?.args, ['--mode', 'validate', '-c', '/fake/bootstrap-1.json', '--log-level', 'error'], 'validated first');
  const fresh = h.host.of('envoy')[1];
  t.equal(fresh?.arg('--restart-epoch'), '1');
  t.equal(fresh?.arg('--base-id'), '77', 'the same base id');
  t.equal(fresh?.arg('--parent-shutdown-time-s'), '3');
  t.same(h.host.files.bootstraps.get(1), next);
  t.ok(h.host.adminCalls.includes('GET 127.0.0.1:15001/server_info'), 'the new epoch counts once its admin answers');
  t.same(old?.signals, [], 'the supervisor leaves the old epoch to Envoy');
  t.same(h.supervisor.status(), {
    state: 'running',
    pid: fresh?.pid,
    epoch: 1,
    restarts: 0,
    version: '1.40.0',
    adminAddress: '127.0.0.1:15001',
  });
  t.equal(h.events.at(-1)?.kind, 'hot-restarted');
  t.equal(h.events.at(-1)?.detail, 'epoch 1');

  old?.exit(0, null);
  const status = h.supervisor.status();
  t.equal(status.state, 'running', 'the old epoch exiting is expected');
  t.equal(status.restarts, 0);
  t.equal(status.lastExit, undefined);
  t.notOk(
    h.events.some((e) => e.kind === 'exited'),
    'no exited event',
  );
  t.equal(h.clock.pending(), 0, 'its safety-net timer is gone with it');
  t.equal(await h.supervisor.reload({ bootstrap: next }), 'unchanged', 'the applied bootstrap is the new one');
  t.equal(await h.supervisor.reload({ bootstrap: BOOTSTRAP }), 'hot-restarted');
  t.equal(h.host.of('envoy')[2]?.arg('--restart-epoch'), '2', 'a second reload goes to epoch 2');
});

t.test('an old epoch that outlives its parent shutdown time gets SIGTERM', async (t) => {
  const h = harness(t, { parentShutdownMs: 3_000 });
  await h.supervisor.start();
  t.equal(await h.supervisor.reload({ bootstrap: { ...BOOTSTRAP, x: 1 } }), 'hot-restarted');
  const [old] = h.host.of('envoy');
  await h.clock.advanceAsync(3_000 + 15_000 - 1);
  t.same(old?.signals, [], 'not before the parent shutdown time and a grace of 15 s');
  await h.clock.advanceAsync(1);
  t.same(old?.signalNames(), ['SIGTERM']);
  t.equal(h.supervisor.status().restarts, 0, 'no crash');
  t.ok(h.logs.includes('old Envoy epoch outlived its parent shutdown time; terminating it'));
});

t.test('a binary replaced in place (same path, new inode) is hot-restarted; status shows the version that serves', async (t) => {
  const h = harness(t);
  await h.supervisor.start();
  t.equal(await h.supervisor.reload({ binary: BINARY }), 'unchanged');
  h.host.files.identities.set(BINARY, '2:2:2');
  h.host.version = '1.41.0';
  h.host.failNext = true;
  await t.rejects(h.supervisor.reload({ binary: BINARY }), { code: 'MESH_E_ENVOY_RELOAD' });
  t.equal(h.supervisor.status().version, '1.40.0', 'the new binary did not come up: the old version serves');
  t.equal(await h.supervisor.reload({ binary: BINARY }), 'hot-restarted');
  t.equal(h.host.of('version').length, 2, 'the new binary was asked for its version once');
  t.same([h.supervisor.status().epoch, h.supervisor.status().version], [0, '1.41.0'], 'a cold restart onto the new binary');
});

t.test('the old epoch exiting before the new one is confirmed is no crash either', async (t) => {
  const h = harness(t);
  await h.supervisor.start();
  let open: () => void = () => {};
  h.host.serverInfoGate = new Promise<void>((resolve) => {
    open = resolve;
  });
  const reloading = h.supervisor.reload({ bootstrap: { ...BOOTSTRAP, x: 1 } });
  await h.host.next('envoy');
  t.equal(h.supervisor.status().state, 'hot-restarting');
  h.host.of('envoy')[0]?.exit(0, null);
  t.equal(h.supervisor.status().state, 'hot-restarting', 'still waiting for the new epoch');
  t.equal(h.supervisor.status().nextRestartAt, undefined, 'no restart scheduled');
  open();
  t.equal(await reloading, 'hot-restarted');
  t.equal(h.supervisor.status().pid, h.host.of('envoy')[1]?.pid);
  t.equal(h.supervisor.status().restarts, 0);
});

t.test('a bootstrap Envoy rejects never reaches a hot restart', async (t) => {
  const h = harness(t);
  await h.supervisor.start();
  h.host.validateOk = false;
  await t.rejects(h.supervisor.reload({ bootstrap: { ...BOOTSTRAP, bad: true } }), {
    code: 'MESH_E_ENVOY_RELOAD',
    message: /rejected the new bootstrap.*registered implementation/s,
  });
  t.equal(h.host.of('envoy').length, 1, 'no new epoch was spawned');
  t.same(h.supervisor.status(), {
    state: 'running',
    pid: h.host.of('envoy')[0]?.pid,
    epoch: 0,
    restarts: 0,
    version: '1.40.0',
    adminAddress: '127.0.0.1:15000',
  });
  h.host.validateOk = true;
  t.equal(await h.supervisor.reload({ bootstrap: { ...BOOTSTRAP, bad: false } }), 'hot-restarted', 'a later good reload works');
  t.equal(h.supervisor.status().epoch, 1);
});

t.test('a new epoch that exits keeps the old one', async (t) => {
  const h = harness(t);
  await h.supervisor.start();
  h.host.failNext = true;
  await t.rejects(h.supervisor.reload({ bootstrap: { ...BOOTSTRAP, y: 1 } }), {
    code: 'MESH_E_ENVOY_RELOAD',
    message: /epoch 1 failed.*before its admin API answered.*error initializing configuration/s,
  });
  const [old] = h.host.of('envoy');
  t.same(h.supervisor.status(), {
    state: 'running',
    pid: old?.pid,
    epoch: 0,
    restarts: 0,
    version: '1.40.0',
    adminAddress: '127.0.0.1:15000',
    lastExit: { code: 1, signal: null, at: h.clock.now() },
  });
  t.same(old?.signals, [], 'the old epoch was not touched');
  old?.exit(134, null);
  t.equal(h.supervisor.status().state, 'backoff', 'the old one crashing now is a crash like any other');
});

t.test('a new epoch that never answers is killed after the start timeout; the old one serves on', async (t) => {
  const h = harness(t, { startTimeoutMs: 2_000 });
  await h.supervisor.start();
  h.host.serverInfoGate = new Promise<void>(() => {});
  h.host.deadAdmins.add(FakeEnvoyHost.address(0));
  await t.rejects(h.clock.runUntil(h.supervisor.reload({ bootstrap: { ...BOOTSTRAP, y: 1 } })), { message: /timed out after 2000 ms/ });
  const [old, child] = h.host.of('envoy');
  t.same(child?.signalNames(), ['SIGKILL'], 'SIGKILL, so the child does not take its parent down with it');
  t.equal(h.supervisor.status().pid, old?.pid);
  t.equal(h.supervisor.status().adminAddress, undefined, "the old epoch's admin API did not answer any more");
});

t.test('after a failed hot restart the old epoch keeps serving, and the next reload restarts Envoy cold', async (t) => {
  const h = harness(t);
  await h.supervisor.start();
  const [old] = h.host.of('envoy');
  h.host.failNext = true;
  // Envoy's hot-restart child shuts its parent's admin API down before it fails.
  h.host.deadAdmins.add(FakeEnvoyHost.address(0));
  await t.rejects(h.supervisor.reload({ bootstrap: { ...BOOTSTRAP, y: 1 } }), { code: 'MESH_E_ENVOY_RELOAD' });
  t.equal(h.supervisor.status().state, 'running');
  t.equal(h.supervisor.status().pid, old?.pid);
  t.equal(h.supervisor.status().adminAddress, undefined, 'the old epoch has no admin API any more');
  h.host.deadAdmins.clear();

  t.equal(await h.supervisor.reload({ bootstrap: { ...BOOTSTRAP, y: 2 } }), 'hot-restarted');
  t.same(old?.signalNames(), ['SIGTERM'], 'the old epoch was stopped');
  const fresh = h.host.of('envoy')[2];
  t.equal(fresh?.arg('--restart-epoch'), '0', 'a cold restart is epoch 0');
  t.same(h.host.files.bootstraps.get(0), { ...BOOTSTRAP, y: 2 });
  t.same(h.supervisor.status(), {
    state: 'running',
    pid: fresh?.pid,
    epoch: 0,
    restarts: 0,
    version: '1.40.0',
    adminAddress: '127.0.0.1:15000',
    lastExit: h.supervisor.status().lastExit,
  });
  t.ok(h.logs.includes('Envoy cannot hot-restart after an earlier failed attempt; restarting it cold (connections are cut)'));
  t.equal(await h.supervisor.reload({ bootstrap: { ...BOOTSTRAP, y: 3 } }), 'hot-restarted');
  t.equal(h.host.of('envoy')[3]?.arg('--restart-epoch'), '1', 'hot restarts work again after the cold one');
});

t.test('a reload during start() waits for it, then hot-restarts', async (t) => {
  const h = harness(t);
  h.host.holdVersion = true;
  const starting = h.supervisor.start();
  const version = await h.host.next('version');
  const reloading = h.supervisor.reload({ bootstrap: { ...BOOTSTRAP, w: 1 } });
  h.host.endVersion(version);
  await starting;
  t.equal(await reloading, 'hot-restarted');
  t.same(
    h.host.of('envoy').map((e) => e.epoch),
    [0, 1],
  );
  t.same(h.host.files.bootstraps.get(0), BOOTSTRAP, 'the start used the settings it began with');
});

t.test('the epoch crashing during a validation: a crash, and the restart uses the new settings', async (t) => {
  const h = harness(t);
  await h.supervisor.start();
  h.host.holdValidation = true;
  const next = { ...BOOTSTRAP, v: 1 };
  const reloading = h.supervisor.reload({ bootstrap: next });
  const validator = await h.host.next('validate');
  h.host.of('envoy')[0]?.exit(null, 'SIGSEGV');
  t.same(validator.signalNames(), ['SIGKILL'], 'the validation is cut short');
  t.equal(await reloading, 'unchanged');
  t.equal(h.supervisor.status().state, 'backoff');
  const started = h.next('started');
  h.clock.advance(100);
  await started;
  t.same(h.host.files.bootstraps.get(0), next);
});

t.test('reload with a binary that cannot be read is a clear error', async (t) => {
  const h = harness(t);
  await h.supervisor.start();
  h.host.files.missing.add('/opt/missing-envoy');
  await t.rejects(h.supervisor.reload({ binary: '/opt/missing-envoy' }), { code: 'MESH_E_CONFIG_INVALID', message: /missing-envoy/ });
  t.equal(h.supervisor.status().state, 'running');
});
