/**
 * The Envoy supervisor against a fake spawner and the fake clock: crash
 * restarts with a doubling backoff, the reset after a stable run, stop() during
 * a backoff, hot restarts (an old epoch leaving is no crash, a rejected or
 * failing new epoch keeps the old one), the drain before a stop, and the status.
 */
import { EventEmitter } from 'node:events';
import { writeFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import type { AdminRequest } from '../../../agent/envoy/admin-client.js';
import { activeDownstream } from '../../../agent/envoy/admin-client.js';
import { drainSeconds, envoyArgs, parseEnvoyVersion } from '../../../agent/envoy/envoy-args.js';
import { createEnvoySupervisor, type EnvoyEvent, type EnvoySupervisorOptions } from '../../../agent/envoy/supervisor.js';
import { silentLogger } from '../../../lib/logger.js';
import { FakeClock } from '../../fakes/clock.js';

class FakeChild extends EventEmitter {
  readonly stdout = new EventEmitter();
  readonly stderr = new EventEmitter();
  readonly signals: Array<{ signal: string; at: number }> = [];
  exited = false;
  /** When true, SIGTERM is ignored (only SIGKILL ends it). */
  ignoreTerm = false;

  constructor(
    readonly pid: number,
    readonly args: string[],
    private readonly now: () => number,
  ) {
    super();
  }

  kill(signal: NodeJS.Signals): boolean {
    this.signals.push({ signal, at: this.now() });
    if (this.exited) return false;
    if (signal === 'SIGKILL' || !this.ignoreTerm) this.exit(null, signal);
    return true;
  }

  exit(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.exited) return;
    this.exited = true;
    this.emit('close', code, signal);
  }

  arg(name: string): string | undefined {
    const i = this.args.indexOf(name);
    return i < 0 ? undefined : this.args[i + 1];
  }
}

interface Harness {
  clock: FakeClock;
  dir: string;
  /** Envoy runs only (not --version or --mode validate). */
  envoys: FakeChild[];
  validations: FakeChild[];
  events: EnvoyEvent[];
  adminCalls: string[];
  validateOk: boolean;
  /** Active downstream connections /stats reports, one value per poll (the last repeats). */
  active: number[];
  /** When set, /server_info waits for it. */
  serverInfoGate?: Promise<void>;
  /** A new envoy that exits right after writing its admin address (its admin never answers). */
  failNext: boolean;
  /** Admin addresses whose /server_info fails. */
  deadAdmins: Set<string>;
  supervisor: ReturnType<typeof createEnvoySupervisor>;
}

const BOOTSTRAP = { node: { id: 'n1', cluster: 'c' }, admin: { address: { socket_address: { address: '127.0.0.1', port_value: 0 } } } };

async function harness(t: Test, overrides: Partial<EnvoySupervisorOptions> = {}): Promise<Harness> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mesh-supervisor-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const binary = path.join(dir, 'envoy');
  await writeFile(binary, 'fake envoy');
  const clock = new FakeClock();
  let nextPid = 1000;
  const h: Harness = {
    clock,
    dir,
    envoys: [],
    validations: [],
    events: [],
    adminCalls: [],
    validateOk: true,
    active: [0],
    failNext: false,
    deadAdmins: new Set(),
    supervisor: undefined as never,
  };
  const spawn = (_binary: string, args: string[]) => {
    const child = new FakeChild(nextPid++, args, () => clock.now());
    if (args[0] === '--version') {
      setImmediate(() => {
        child.stdout.emit(
          'data',
          Buffer.from('\nenvoy  version: 9e5580933739775e8bce696a57a2e1bc99368f23/1.40.0/Clean/RELEASE/BoringSSL\n'),
        );
        child.exit(0, null);
      });
    } else if (args[0] === '--mode') {
      h.validations.push(child);
      const ok = h.validateOk;
      setImmediate(() => {
        if (!ok) child.stderr.emit('data', "error initializing configuration 'x': Didn't find a registered implementation for 'nope'\n");
        child.exit(ok ? 0 : 1, null);
      });
    } else {
      h.envoys.push(child);
      const address = `127.0.0.1:${15000 + Number(child.arg('--restart-epoch'))}`;
      writeFileSync(child.arg('--admin-address-path') as string, `${address}\n`);
      if (h.failNext) {
        h.failNext = false;
        h.deadAdmins.add(address);
        setImmediate(() => {
          child.stderr.emit('data', 'critical: error initializing configuration\n');
          child.exit(1, null);
        });
      }
    }
    return child;
  };
  const adminRequest: AdminRequest = async (address, method, apiPath) => {
    h.adminCalls.push(`${method} ${address}${apiPath}`);
    if (apiPath === '/server_info') {
      if (h.deadAdmins.has(address)) throw new Error('connect ECONNREFUSED');
      await h.serverInfoGate;
      return { status: 200, body: '{"state":"PRE_INITIALIZING"}' };
    }
    if (apiPath === '/drain_listeners?graceful') return { status: 200, body: 'OK\n' };
    if (apiPath.startsWith('/stats')) {
      const active = h.active.length > 1 ? (h.active.shift() as number) : (h.active[0] as number);
      return { status: 200, body: `http.admin.downstream_cx_active: 1\nlistener.127.0.0.1_8080.downstream_cx_active: ${active}\n` };
    }
    return { status: 404, body: '' };
  };
  h.supervisor = createEnvoySupervisor({
    binary,
    workDir: dir,
    bootstrap: BOOTSTRAP,
    baseId: 77,
    drainTimeMs: 1_000,
    backoff: { initialMs: 100, maxMs: 1_000 },
    clock,
    log: silentLogger,
    spawn,
    adminRequest,
    ...overrides,
  });
  h.supervisor.onEvent((e) => h.events.push(e));
  t.teardown(async () => {
    for (const child of h.envoys) child.exit(null, 'SIGKILL');
  });
  return h;
}

/** Waits (real time) for real I/O and promise chains to catch up. */
async function eventually(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (cond()) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error(`never happened: ${what}`);
}

/** Advances the fake clock in steps until the promise settles. */
async function drive<T>(clock: FakeClock, promise: Promise<T>, stepMs = 50, maxSteps = 1_000): Promise<T> {
  let settled = false;
  const watched = promise.finally(() => {
    settled = true;
  });
  for (let i = 0; i < maxSteps && !settled; i++) {
    await new Promise((resolve) => setTimeout(resolve, 2));
    if (!settled) clock.advance(stepMs);
  }
  return watched;
}

t.test('the Envoy command line', async (t) => {
  const args = envoyArgs({
    workDir: '/var/lib/mesh/envoy',
    epoch: 3,
    baseId: 9,
    drainTimeMs: 1_500,
    parentShutdownMs: 2_000,
    concurrency: 2,
    logLevel: 'warning',
  });
  t.same(args, [
    '-c',
    '/var/lib/mesh/envoy/bootstrap-3.json',
    '--restart-epoch',
    '3',
    '--base-id',
    '9',
    '--admin-address-path',
    '/var/lib/mesh/envoy/admin-address-3',
    '--drain-time-s',
    '2',
    '--parent-shutdown-time-s',
    '3',
    '--concurrency',
    '2',
    '--log-level',
    'warning',
  ]);
  t.same(drainSeconds(10_000, 15_000), { drain: 10, parentShutdown: 15 });
  t.same(drainSeconds(10_000, 10_000), { drain: 10, parentShutdown: 11 }, 'parent shutdown time stays above the drain time');
  t.same(drainSeconds(0, 0), { drain: 1, parentShutdown: 2 });
  t.equal(parseEnvoyVersion('envoy  version: 9e5580933739775e8bce696a57a2e1bc99368f23/1.40.0/Clean/RELEASE/BoringSSL'), '1.40.0');
  t.equal(parseEnvoyVersion('garbage'), undefined);
});

t.test('active downstream connections leave out admin and per-worker copies', async (t) => {
  const stats = [
    'http.admin.downstream_cx_active: 1',
    'http.ingress.downstream_cx_active: 2',
    'listener.127.0.0.1_8080.downstream_cx_active: 2',
    'listener.127.0.0.1_8080.worker_0.downstream_cx_active: 2',
    'listener.127.0.0.1_9090.downstream_cx_active: 3',
    'listener.admin.downstream_cx_active: 1',
    'listener.admin.main_thread.downstream_cx_active: 1',
  ].join('\n');
  t.equal(activeDownstream(stats), 7);
  t.equal(activeDownstream('http.admin.downstream_cx_active: 1\nlistener.admin.downstream_cx_active: 1\n'), 0);
});

t.test('start: epoch 0 with the right arguments, status once the admin address is written', async (t) => {
  const h = await harness(t);
  await h.supervisor.start();
  const envoy = h.envoys[0] as FakeChild;
  t.equal(h.envoys.length, 1);
  t.equal(envoy.arg('--restart-epoch'), '0');
  t.equal(envoy.arg('--base-id'), '77');
  t.equal(envoy.arg('--concurrency'), '2', 'default concurrency');
  t.equal(envoy.arg('--log-level'), 'warning', 'default log level');
  t.equal(envoy.arg('--drain-time-s'), '1');
  t.equal(envoy.arg('--parent-shutdown-time-s'), '6', 'default parent shutdown: drain time + 5 s');
  t.same(JSON.parse(await readFile(envoy.arg('-c') as string, 'utf8')), BOOTSTRAP, 'the bootstrap file holds the bootstrap');
  t.same(h.supervisor.status(), {
    state: 'running',
    pid: envoy.pid,
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
  t.equal(h.envoys.length, 1, 'a second start() does nothing');
});

t.test('start fails when Envoy exits before writing its admin address', async (t) => {
  const h = await harness(t);
  // A spawner whose envoy never writes its admin address and exits with an error.
  const supervisor = createEnvoySupervisor({
    binary: path.join(h.dir, 'envoy'),
    workDir: h.dir,
    bootstrap: BOOTSTRAP,
    baseId: 1,
    drainTimeMs: 1_000,
    backoff: { initialMs: 100, maxMs: 1_000 },
    clock: h.clock,
    log: silentLogger,
    spawn: (_binary, args) => {
      const child = new FakeChild(1, args, () => h.clock.now());
      setImmediate(() => {
        child.stderr.emit('data', 'critical: cannot bind\n');
        child.exit(1, null);
      });
      return child;
    },
  });
  await t.rejects(supervisor.start(), { code: 'MESH_E_PROCESS_START', message: /cannot bind/ });
  t.equal(supervisor.status().state, 'stopped', 'no restarts after a failed start');
  t.equal(h.clock.pending(), 0, 'no restart timer');
});

t.test('crash restarts back off, doubling up to the maximum', async (t) => {
  const h = await harness(t);
  await h.supervisor.start();
  const delays: number[] = [];
  for (let i = 0; i < 6; i++) {
    const envoy = h.envoys[i] as FakeChild;
    envoy.exit(1, null);
    const status = h.supervisor.status();
    t.equal(status.state, 'backoff');
    t.equal(status.pid, undefined, 'no pid while waiting');
    t.same(status.lastExit, { code: 1, signal: null, at: h.clock.now() });
    t.equal(status.restarts, i, 'restarts count restarts done, not crashes pending');
    const delay = (status.nextRestartAt as number) - h.clock.now();
    delays.push(delay);
    h.clock.advance(delay - 1);
    await new Promise((resolve) => setTimeout(resolve, 10));
    t.equal(h.envoys.length, i + 1, 'not restarted before the delay');
    h.clock.advance(1);
    await eventually(() => h.supervisor.status().state === 'running', 'the restarted envoy to run');
    t.equal(h.envoys.length, i + 2);
    t.equal(h.envoys[i + 1]?.arg('--restart-epoch'), '0', 'a crash restart is epoch 0');
    t.equal(h.supervisor.status().restarts, i + 1);
    t.equal(h.supervisor.status().pid, h.envoys[i + 1]?.pid);
  }
  t.same(delays, [100, 200, 400, 800, 1_000, 1_000]);
  const kinds = h.events.map((e) => e.kind);
  t.same(kinds.slice(0, 4), ['started', 'exited', 'restarting', 'started']);
  t.equal(h.events.find((e) => e.kind === 'exited')?.detail, 'exit code 1');
});

t.test('a stable run resets the backoff', async (t) => {
  const h = await harness(t, { stableAfterMs: 30_000 });
  await h.supervisor.start();
  const crashAndRestart = async (i: number) => {
    h.envoys[i]?.exit(null, 'SIGSEGV');
    const delay = (h.supervisor.status().nextRestartAt as number) - h.clock.now();
    h.clock.advance(delay);
    await eventually(() => h.envoys.length === i + 2 && h.supervisor.status().state === 'running', 'restart');
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

t.test('stop() during a backoff cancels the restart', async (t) => {
  const h = await harness(t);
  await h.supervisor.start();
  h.envoys[0]?.exit(1, null);
  t.equal(h.supervisor.status().state, 'backoff');
  await h.supervisor.stop();
  const status = h.supervisor.status();
  t.equal(status.state, 'stopped');
  t.equal(status.nextRestartAt, undefined);
  t.equal(h.clock.pending(), 0, 'the restart timer is gone');
  h.clock.advance(60_000);
  await new Promise((resolve) => setTimeout(resolve, 20));
  t.equal(h.envoys.length, 1, 'no restart after stop()');
  t.equal(h.events.at(-1)?.kind, 'stopped');
});

t.test('stop(): drain, wait for connections, SIGTERM', async (t) => {
  const h = await harness(t);
  await h.supervisor.start();
  h.active = [3, 1, 0];
  const began = h.clock.now();
  await drive(h.clock, h.supervisor.stop());
  const envoy = h.envoys[0] as FakeChild;
  t.ok(h.adminCalls.includes('POST 127.0.0.1:15000/drain_listeners?graceful'), 'listeners drained through admin');
  t.equal(h.adminCalls.filter((c) => c.includes('/stats')).length, 3, 'polled until no connection was left');
  t.same(
    envoy.signals.map((s) => s.signal),
    ['SIGTERM'],
  );
  t.ok((envoy.signals[0]?.at as number) - began < 1_000, 'SIGTERM before the drain time was over');
  t.equal(h.supervisor.status().state, 'stopped');
  t.equal(h.supervisor.status().pid, undefined);
  t.same(h.supervisor.status().lastExit, { code: null, signal: 'SIGTERM', at: envoy.signals[0]?.at });
  t.equal(h.events.at(-1)?.kind, 'stopped');
});

t.test('stop(): connections that stay open get drainTimeMs, a process ignoring SIGTERM gets SIGKILL after 5 s', async (t) => {
  const h = await harness(t);
  await h.supervisor.start();
  h.active = [2];
  const envoy = h.envoys[0] as FakeChild;
  envoy.ignoreTerm = true;
  const began = h.clock.now();
  const stopping = h.supervisor.stop();
  await eventually(() => h.supervisor.status().state === 'draining', 'draining');
  await drive(h.clock, stopping, 50);
  const [term, kill] = envoy.signals;
  t.equal(term?.signal, 'SIGTERM');
  t.ok((term?.at as number) - began >= 1_000, 'SIGTERM only once drainTimeMs passed');
  t.ok((term?.at as number) - began < 1_200, 'and not much later');
  t.equal(kill?.signal, 'SIGKILL');
  t.equal((kill?.at as number) - (term?.at as number), 5_000, 'SIGKILL 5 s after SIGTERM');
  t.equal(h.supervisor.status().state, 'stopped');
});

t.test('hot restart: epoch + 1, same base id; the old epoch leaving is no crash', async (t) => {
  const h = await harness(t, { parentShutdownMs: 3_000 });
  await h.supervisor.start();
  const old = h.envoys[0] as FakeChild;
  const reordered = { admin: BOOTSTRAP.admin, node: BOOTSTRAP.node };
  t.equal(await h.supervisor.reload({ bootstrap: reordered }), 'unchanged', 'key order alone changes nothing');
  t.equal(await h.supervisor.reload({}), 'unchanged');
  t.equal(h.validations.length, 0);

  const next = { ...BOOTSTRAP, stats_config: { stats_tags: [] } };
  t.equal(await h.supervisor.reload({ bootstrap: next }), 'hot-restarted');
  t.equal(h.validations.length, 1, 'the new bootstrap was validated first');
  t.same(h.validations[0]?.args.slice(0, 3), ['--mode', 'validate', '-c']);
  const fresh = h.envoys[1] as FakeChild;
  t.equal(fresh.arg('--restart-epoch'), '1');
  t.equal(fresh.arg('--base-id'), '77', 'the same base id');
  t.equal(fresh.arg('--parent-shutdown-time-s'), '3');
  t.same(JSON.parse(await readFile(fresh.arg('-c') as string, 'utf8')), next);
  t.same(old.signals, [], 'the supervisor leaves the old epoch to Envoy');
  let status = h.supervisor.status();
  t.equal(status.state, 'running');
  t.equal(status.epoch, 1);
  t.equal(status.pid, fresh.pid);
  t.equal(status.adminAddress, '127.0.0.1:15001');
  t.equal(h.events.at(-1)?.kind, 'hot-restarted');

  old.exit(0, null);
  status = h.supervisor.status();
  t.equal(status.state, 'running', 'the old epoch exiting is expected');
  t.equal(status.restarts, 0);
  t.equal(status.lastExit, undefined);
  t.notOk(
    h.events.some((e) => e.kind === 'exited'),
    'no exited event',
  );
  t.equal(await h.supervisor.reload({ bootstrap: next }), 'unchanged', 'the applied bootstrap is the new one');

  // A second reload goes to epoch 2.
  t.equal(await h.supervisor.reload({ bootstrap: BOOTSTRAP }), 'hot-restarted');
  t.equal(h.envoys[2]?.arg('--restart-epoch'), '2');
  t.equal(h.supervisor.status().epoch, 2);
});

t.test('hot restart: the old epoch exiting before the new one is confirmed is no crash either', async (t) => {
  const h = await harness(t);
  await h.supervisor.start();
  let open: () => void = () => {};
  h.serverInfoGate = new Promise<void>((resolve) => {
    open = resolve;
  });
  const reloading = h.supervisor.reload({ bootstrap: { ...BOOTSTRAP, x: 1 } });
  await eventually(() => h.envoys.length === 2, 'the new epoch to spawn');
  t.equal(h.supervisor.status().state, 'hot-restarting');
  h.envoys[0]?.exit(0, null);
  t.equal(h.supervisor.status().state, 'hot-restarting', 'still waiting for the new epoch');
  t.equal(h.clock.pending(), 0, 'no restart scheduled');
  open();
  t.equal(await reloading, 'hot-restarted');
  t.equal(h.supervisor.status().pid, h.envoys[1]?.pid);
  t.equal(h.supervisor.status().restarts, 0);
});

t.test('a bootstrap Envoy rejects never reaches a hot restart', async (t) => {
  const h = await harness(t);
  await h.supervisor.start();
  h.validateOk = false;
  await t.rejects(h.supervisor.reload({ bootstrap: { ...BOOTSTRAP, bad: true } }), {
    code: 'MESH_E_ENVOY_RELOAD',
    message: /rejected the new bootstrap.*registered implementation/s,
  });
  t.equal(h.envoys.length, 1, 'no new epoch was spawned');
  t.same(h.supervisor.status(), {
    state: 'running',
    pid: h.envoys[0]?.pid,
    epoch: 0,
    restarts: 0,
    version: '1.40.0',
    adminAddress: '127.0.0.1:15000',
  });
  h.validateOk = true;
  t.equal(await h.supervisor.reload({ bootstrap: { ...BOOTSTRAP, bad: false } }), 'hot-restarted', 'a later good reload works');
  t.equal(h.supervisor.status().epoch, 1);
});

t.test('a new epoch that exits keeps the old one', async (t) => {
  const h = await harness(t);
  await h.supervisor.start();
  h.failNext = true;
  await t.rejects(h.supervisor.reload({ bootstrap: { ...BOOTSTRAP, y: 1 } }), {
    code: 'MESH_E_ENVOY_RELOAD',
    message: /epoch 1 failed.*error initializing configuration/s,
  });
  const status = h.supervisor.status();
  t.equal(status.state, 'running');
  t.equal(status.pid, h.envoys[0]?.pid);
  t.equal(status.epoch, 0);
  t.equal(status.restarts, 0);
  t.same(h.envoys[0]?.signals, [], 'the old epoch was not touched');
  // The old one crashing now is a crash like any other.
  h.envoys[0]?.exit(134, null);
  t.equal(h.supervisor.status().state, 'backoff');
});

t.test('after a failed hot restart the old epoch keeps serving, and the next reload restarts Envoy cold', async (t) => {
  const h = await harness(t);
  await h.supervisor.start();
  const old = h.envoys[0] as FakeChild;
  h.failNext = true;
  // Envoy's hot-restart child shuts its parent's admin API down before it fails.
  h.deadAdmins.add('127.0.0.1:15000');
  await t.rejects(h.supervisor.reload({ bootstrap: { ...BOOTSTRAP, y: 1 } }), { code: 'MESH_E_ENVOY_RELOAD' });
  let status = h.supervisor.status();
  t.equal(status.state, 'running');
  t.equal(status.pid, old.pid);
  t.equal(status.adminAddress, undefined, 'the old epoch has no admin API any more');
  h.deadAdmins.clear();

  t.equal(await h.supervisor.reload({ bootstrap: { ...BOOTSTRAP, y: 2 } }), 'hot-restarted');
  t.same(
    old.signals.map((s) => s.signal),
    ['SIGTERM'],
    'the old epoch was stopped',
  );
  const fresh = h.envoys[2] as FakeChild;
  t.equal(fresh.arg('--restart-epoch'), '0', 'a cold restart is epoch 0');
  t.same(JSON.parse(await readFile(fresh.arg('-c') as string, 'utf8')), { ...BOOTSTRAP, y: 2 });
  status = h.supervisor.status();
  t.equal(status.pid, fresh.pid);
  t.equal(status.epoch, 0);
  t.equal(status.restarts, 0, 'a cold restart on reload is no crash restart');
  t.equal(status.adminAddress, '127.0.0.1:15000');

  t.equal(await h.supervisor.reload({ bootstrap: { ...BOOTSTRAP, y: 3 } }), 'hot-restarted');
  t.equal(h.envoys[3]?.arg('--restart-epoch'), '1', 'hot restarts work again after the cold one');
});

t.test('reload while in backoff keeps the settings for the restart', async (t) => {
  const h = await harness(t);
  await h.supervisor.start();
  h.envoys[0]?.exit(1, null);
  const next = { ...BOOTSTRAP, z: 1 };
  t.equal(await h.supervisor.reload({ bootstrap: next }), 'unchanged');
  h.clock.advance(100);
  await eventually(() => h.supervisor.status().state === 'running', 'restart');
  t.same(JSON.parse(await readFile(h.envoys[1]?.arg('-c') as string, 'utf8')), next, 'the restart used the new bootstrap');
});

t.test('a missing binary is a clear error', async (t) => {
  const h = await harness(t);
  await h.supervisor.start();
  await t.rejects(h.supervisor.reload({ binary: path.join(h.dir, 'missing-envoy') }), {
    code: 'MESH_E_CONFIG_INVALID',
    message: /missing-envoy/,
  });
});
