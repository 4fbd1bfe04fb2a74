/**
 * The Envoy supervisor with the real Envoy and a static bootstrap (no ADS): a
 * SIGKILLed Envoy comes back, a hot restart keeps an established TCP
 * connection working while the new epoch serves a new listener, stop() drains
 * (and waits for open connections up to the drain time), and a bootstrap Envoy
 * rejects leaves the running Envoy serving. Each test uses its own base id so
 * test files running in parallel never share hot-restart state.
 */
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import {
  createEnvoySupervisor,
  type EnvoySupervisor,
  type EnvoySupervisorOptions,
  envoySharedMemoryPath,
} from '../../agent/envoy/supervisor.js';
import { systemClock } from '../../lib/clock.js';
import { createLogger } from '../../lib/logger.js';
import { killIfSame, type ProcessRef, processAlive, processesWith, processRef } from '../support/child.js';
import { freePorts } from '../support/ports.js';
import { tempDir } from '../support/temp-dir.js';
import { tools } from '../support/tools.js';
import { httpGet, waitFor } from '../support/wait.js';

t.setTimeout(180_000);

type Listener = Record<string, unknown>;

function tcpListener(name: string, port: number, cluster: string): Listener {
  return {
    name,
    address: { socket_address: { address: '127.0.0.1', port_value: port } },
    filter_chains: [
      {
        filters: [
          {
            name: 'envoy.filters.network.tcp_proxy',
            typed_config: {
              '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy',
              stat_prefix: name,
              cluster,
            },
          },
        ],
      },
    ],
  };
}

function httpListener(name: string, port: number, cluster: string): Listener {
  return {
    name,
    address: { socket_address: { address: '127.0.0.1', port_value: port } },
    filter_chains: [
      {
        filters: [
          {
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
              stat_prefix: name,
              route_config: {
                name: 'local',
                virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster } }] }],
              },
              http_filters: [
                {
                  name: 'envoy.filters.http.router',
                  typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' },
                },
              ],
            },
          },
        ],
      },
    ],
  };
}

function cluster(name: string, port: number): Record<string, unknown> {
  return {
    name,
    type: 'STATIC',
    connect_timeout: { seconds: '2' },
    load_assignment: {
      cluster_name: name,
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } }] }],
    },
  };
}

function bootstrap(listeners: Listener[], backends: { http: number; echo: number }): Record<string, unknown> {
  return {
    node: { id: 'supervisor-test', cluster: 'mesh-test' },
    admin: { address: { socket_address: { address: '127.0.0.1', port_value: 0 } } },
    static_resources: { listeners, clusters: [cluster('web', backends.http), cluster('echo', backends.echo)] },
  };
}

interface Backends {
  http: number;
  echo: number;
}

async function backends(t: Test): Promise<Backends> {
  const web = http.createServer((_req, res) => {
    res.setHeader('content-type', 'text/plain');
    res.end('hello from backend');
  });
  await new Promise<void>((resolve) => web.listen(0, '127.0.0.1', resolve));
  const sockets = new Set<net.Socket>();
  const echo = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
  t.teardown(async () => {
    web.closeAllConnections();
    for (const socket of sockets) socket.destroy();
    await Promise.all([new Promise((resolve) => web.close(resolve)), new Promise((resolve) => echo.close(resolve))]);
  });
  return { http: (web.address() as AddressInfo).port, echo: (echo.address() as AddressInfo).port };
}

/** A TCP connection through Envoy: send text, wait for the echo. */
async function connect(t: Test, port: number) {
  const socket = net.connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  let received = '';
  let closed = false;
  socket.on('data', (chunk) => (received += chunk.toString()));
  socket.on('close', () => (closed = true));
  socket.on('error', () => {});
  t.teardown(() => {
    socket.destroy();
  });
  return {
    socket,
    closed: () => closed,
    async exchange(text: string): Promise<string> {
      received = '';
      socket.write(text);
      return waitFor(async () => (received.length >= text.length ? received : undefined), { timeoutMs: 5_000, what: `echo of ${text}` });
    },
  };
}

interface Started {
  supervisor: EnvoySupervisor;
  logs: string[];
  workDir: string;
  baseId: number;
}

async function supervise(t: Test, initial: Record<string, unknown>, overrides: Partial<EnvoySupervisorOptions> = {}): Promise<Started> {
  const { envoy } = await tools();
  const workDir = await tempDir(t, 'mesh-supervisor-');
  const baseId = 1_000 + Math.floor(Math.random() * 1_000_000);
  const logs: string[] = [];
  // Each Envoy as it was when it ran: a pid alone may name another test's process by teardown.
  const envoys = new Map<number, ProcessRef>();
  const supervisor = createEnvoySupervisor({
    binary: envoy.path,
    workDir,
    bootstrap: initial,
    baseId,
    concurrency: 1,
    drainTimeMs: 1_000,
    parentShutdownMs: 3_000,
    backoff: { initialMs: 200, maxMs: 2_000 },
    clock: systemClock,
    log: createLogger({ level: 'info', format: 'human', sink: { write: (line) => logs.push(line) } }),
    ...overrides,
  });
  supervisor.onEvent((e) => {
    const pid = e.status.pid;
    if (pid === undefined || envoys.has(pid)) return;
    const ref = processRef(pid);
    if (ref !== undefined) envoys.set(pid, ref);
  });
  t.teardown(async () => {
    await supervisor.stop();
    for (const ref of envoys.values()) killIfSame(ref, 'SIGKILL');
    if (!t.passing()) t.comment(logs.join('\n'));
    // stop() removes the hot-restart shared memory; this covers a test that failed before stopping.
    await rm(envoySharedMemoryPath(baseId), { force: true });
  });
  return { supervisor, logs, workDir, baseId };
}

const getThrough = (port: number) =>
  waitFor(
    async () => {
      const response = await httpGet(`http://127.0.0.1:${port}/hello`, { headers: { connection: 'close' } });
      return response.status === 200 ? response : undefined;
    },
    { timeoutMs: 15_000, what: `a request through Envoy on ${port}` },
  );

t.test('start, then a SIGKILLed Envoy is restarted', async (t) => {
  const ports = await backends(t);
  const [listenPort] = (await freePorts(1)) as [number];
  const { supervisor } = await supervise(t, bootstrap([httpListener('web', listenPort, 'web')], ports));
  const { envoy } = await tools();

  await supervisor.start();
  const first = supervisor.status();
  t.equal(first.state, 'running');
  t.equal(first.version, envoy.version);
  t.match(first.adminAddress, /^127\.0\.0\.1:\d+$/);
  t.ok(processAlive(first.pid), 'the envoy pid is a live process');
  const response = await getThrough(listenPort);
  t.equal(response.body, 'hello from backend');
  t.equal(response.headers.get('server'), 'envoy');

  process.kill(first.pid as number, 'SIGKILL');
  const restarted = await waitFor(
    async () => {
      const s = supervisor.status();
      return s.state === 'running' && s.restarts === 1 ? s : undefined;
    },
    { timeoutMs: 15_000, what: 'the supervisor to restart envoy' },
  );
  t.not(restarted.pid, first.pid, 'a new process');
  t.equal(restarted.epoch, 0);
  t.equal(restarted.lastExit?.signal, 'SIGKILL');
  t.equal((await getThrough(listenPort)).body, 'hello from backend', 'requests work again');
});

t.test('hot restart keeps an established connection and adds a listener', async (t) => {
  const ports = await backends(t);
  const [tcpPort, extraPort] = (await freePorts(2)) as [number, number];
  const { supervisor } = await supervise(t, bootstrap([tcpListener('tcp', tcpPort, 'echo')], ports));
  await supervisor.start();
  const before = supervisor.status();

  const conn = await waitFor(
    async () => {
      const c = await connect(t, tcpPort);
      return (await c.exchange('one')) === 'one' ? c : undefined;
    },
    { timeoutMs: 15_000, what: 'a TCP connection through envoy' },
  );

  const result = await supervisor.reload({
    bootstrap: bootstrap([tcpListener('tcp', tcpPort, 'echo'), tcpListener('extra', extraPort, 'echo')], ports),
  });
  t.equal(result, 'hot-restarted');
  const after = supervisor.status();
  t.equal(after.epoch, 1);
  t.equal(after.state, 'running');
  t.not(after.pid, before.pid, 'the supervisor tracks the new epoch');
  t.not(after.adminAddress, before.adminAddress, 'the new epoch has its own admin');
  t.ok(processAlive(before.pid), 'the old epoch still drains');

  t.equal(await conn.exchange('two'), 'two', 'the established connection still works after the reload');
  const extra = await waitFor(
    async () => {
      const c = await connect(t, extraPort);
      return (await c.exchange('three')) === 'three' ? c : undefined;
    },
    { timeoutMs: 15_000, what: 'the new listener' },
  );
  t.ok(extra, 'the new listener serves');
  const fresh = await connect(t, tcpPort);
  t.equal(await fresh.exchange('four'), 'four', 'the kept listener takes new connections');

  await waitFor(async () => (processAlive(before.pid) ? undefined : true), { timeoutMs: 10_000, what: 'the old epoch to exit' });
  t.notOk(processAlive(before.pid), 'Envoy shut the old epoch down after the parent shutdown time');
  const settled = supervisor.status();
  t.equal(settled.restarts, 0, 'the old epoch exiting is no crash');
  t.equal(settled.pid, after.pid);
  t.equal(settled.state, 'running');
  t.equal(await fresh.exchange('five'), 'five', 'connections to the new epoch are unaffected');
});

t.test('stop drains: an open connection keeps working until the drain time is over', async (t) => {
  const ports = await backends(t);
  const [tcpPort] = (await freePorts(1)) as [number];
  const { supervisor, logs } = await supervise(t, bootstrap([tcpListener('tcp', tcpPort, 'echo')], ports), {
    drainTimeMs: 2_000,
    parentShutdownMs: 4_000,
  });
  await supervisor.start();
  const pid = supervisor.status().pid;
  const conn = await waitFor(
    async () => {
      const c = await connect(t, tcpPort);
      return (await c.exchange('idle')) === 'idle' ? c : undefined;
    },
    { timeoutMs: 15_000, what: 'a TCP connection through envoy' },
  );
  const stopping = supervisor.stop();
  await waitFor(async () => (logs.some((l) => l.includes('draining Envoy listeners')) ? true : undefined), { what: 'the drain to begin' });
  t.equal(supervisor.status().state, 'draining');
  t.equal(await conn.exchange('still there'), 'still there', 'the open connection is served during the drain');
  t.ok(processAlive(pid), 'Envoy waits for it');
  await stopping;
  t.ok(
    logs.some((l) => l.includes('drain time is over with connections still open')),
    'it waited for the connection until the drain time was over',
  );
  t.notOk(processAlive(pid), 'the process is gone');
  t.equal(supervisor.status().state, 'stopped');
  await waitFor(async () => (conn.closed() ? true : undefined), { timeoutMs: 5_000, what: 'the connection to close' });
});

t.test('stop without connections does not wait for the drain time', async (t) => {
  const ports = await backends(t);
  const [tcpPort] = (await freePorts(1)) as [number];
  const { supervisor, logs } = await supervise(t, bootstrap([tcpListener('tcp', tcpPort, 'echo')], ports), {
    drainTimeMs: 60_000,
    parentShutdownMs: 65_000,
  });
  await supervisor.start();
  const pid = supervisor.status().pid;
  // Wait until it serves, so the stop is of a fully started Envoy.
  const c = await waitFor(
    async () => {
      const conn = await connect(t, tcpPort);
      return (await conn.exchange('x')) === 'x' ? conn : undefined;
    },
    { timeoutMs: 15_000, what: 'a TCP connection through envoy' },
  );
  c.socket.destroy();
  await waitFor(async () => (c.closed() ? true : undefined), { what: 'the client to close' });
  await supervisor.stop();
  t.ok(
    logs.some((l) => l.includes('no downstream connection is left; stopping Envoy')),
    'stopped because no connection was left',
  );
  t.notOk(
    logs.some((l) => l.includes('drain time is over')),
    'not because the drain time was over',
  );
  t.notOk(processAlive(pid), 'the process is gone');
  t.equal(supervisor.status().state, 'stopped');
  t.equal(supervisor.status().pid, undefined);
});

t.test('a bootstrap Envoy rejects leaves the running Envoy serving', async (t) => {
  const ports = await backends(t);
  const [listenPort, badPort] = (await freePorts(2)) as [number, number];
  const good = bootstrap([httpListener('web', listenPort, 'web')], ports);
  const { supervisor } = await supervise(t, good);
  await supervisor.start();
  await getThrough(listenPort);
  const before = supervisor.status();

  const bad = bootstrap(
    [
      httpListener('web', listenPort, 'web'),
      {
        name: 'broken',
        address: { socket_address: { address: '127.0.0.1', port_value: badPort } },
        filter_chains: [
          {
            filters: [
              { name: 'envoy.filters.network.no_such_filter', typed_config: { '@type': 'type.googleapis.com/google.protobuf.Struct' } },
            ],
          },
        ],
      },
    ],
    ports,
  );
  await t.rejects(supervisor.reload({ bootstrap: bad }), { code: 'MESH_E_ENVOY_RELOAD', message: /no_such_filter/ });
  const after = supervisor.status();
  t.equal(after.pid, before.pid, 'the same process');
  t.equal(after.epoch, 0);
  t.equal(after.state, 'running');
  t.ok(processAlive(before.pid));
  t.equal((await getThrough(listenPort)).body, 'hello from backend', 'the old process still serves');
  const admin = await httpGet(`http://${after.adminAddress}/server_info`);
  t.equal(admin.status, 200, 'and its admin API still answers');

  t.equal(await supervisor.reload({ bootstrap: good }), 'unchanged', 'the applied bootstrap is still the good one');
});

t.test('a new epoch that fails at run time keeps the old one; the next reload restarts cold', async (t) => {
  const ports = await backends(t);
  const [listenPort] = (await freePorts(1)) as [number];
  // A port someone else holds: `--mode validate` binds nothing, so only the real child fails on it.
  const blocker = net.createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  const busyPort = (blocker.address() as AddressInfo).port;
  t.teardown(() => new Promise((resolve) => blocker.close(resolve)));
  const { supervisor } = await supervise(t, bootstrap([httpListener('web', listenPort, 'web')], ports));
  await supervisor.start();
  await getThrough(listenPort);
  const before = supervisor.status();

  const withBusy = bootstrap([httpListener('web', listenPort, 'web'), tcpListener('busy', busyPort, 'echo')], ports);
  await t.rejects(supervisor.reload({ bootstrap: withBusy }), { code: 'MESH_E_ENVOY_RELOAD', message: /Address already in use/ });
  const after = supervisor.status();
  t.equal(after.pid, before.pid, 'the old epoch is still the one');
  t.equal(after.state, 'running');
  t.ok(processAlive(before.pid));
  t.equal((await getThrough(listenPort)).body, 'hello from backend', 'and it still serves');
  t.equal(after.adminAddress, undefined, 'the failed child had shut its admin API down');

  await new Promise((resolve) => blocker.close(resolve));
  t.equal(await supervisor.reload({ bootstrap: withBusy }), 'hot-restarted');
  const cold = supervisor.status();
  t.equal(cold.epoch, 0, 'Envoy cannot hot-restart after the failed child, so the supervisor restarted it cold');
  t.not(cold.pid, before.pid);
  t.notOk(processAlive(before.pid), 'the old process is gone');
  t.equal((await getThrough(listenPort)).body, 'hello from backend');
  const conn = await waitFor(
    async () => {
      const c = await connect(t, busyPort);
      return (await c.exchange('now free')) === 'now free' ? c : undefined;
    },
    { timeoutMs: 15_000, what: 'the added listener' },
  );
  t.ok(conn, 'the added listener serves');

  t.equal(await supervisor.reload({ bootstrap: bootstrap([httpListener('web', listenPort, 'web')], ports) }), 'hot-restarted');
  t.equal(supervisor.status().epoch, 1, 'and hot restarts work again');
  t.equal((await getThrough(listenPort)).body, 'hello from backend');
});

t.test('stop() at any moment of a start or a hot restart leaves no Envoy process and resolves', async (t) => {
  const ports = await backends(t);
  const [listenPort] = (await freePorts(1)) as [number];
  const initial = bootstrap([httpListener('web', listenPort, 'web')], ports);
  /** A reload under way, until the process that marks the moment appears (or the reload is over). */
  const reloadUntil = async (s: Started, flag: string, value: string) => {
    await s.supervisor.start();
    const reloading = s.supervisor.reload({ bootstrap: { ...initial, stats_flush_interval: '7s' } }).catch(() => 'failed');
    await Promise.race([reloading, waitForProcess(s.workDir, flag, value)]);
  };
  /** Each moment: what happens after start() and before stop(). */
  const moments: Array<[string, (s: Started) => Promise<unknown>]> = [
    ['right after start(), before the spawn', async () => {}],
    ['once the epoch-0 process exists', (s) => waitForProcess(s.workDir, '--restart-epoch', '0')],
    ['once start() resolved', (s) => s.supervisor.start()],
    ['during the validation of a new bootstrap', (s) => reloadUntil(s, '--mode', 'validate')],
    ['during a hot restart, once epoch 1 exists', (s) => reloadUntil(s, '--restart-epoch', '1')],
  ];
  for (const [moment, before] of moments) {
    const started = await supervise(t, initial);
    const starting = started.supervisor.start();
    starting.catch(() => {});
    await before(started);
    const state = started.supervisor.status().state;
    await started.supervisor.stop();
    t.same(processesWith(started.workDir), [], `${moment} (${state}): no Envoy process is left`);
    t.equal(started.supervisor.status().state, 'stopped', `${moment}: stopped`);
    t.notOk(existsSync(envoySharedMemoryPath(started.baseId)), `${moment}: the shared memory is removed`);
    await Promise.allSettled([starting]);
  }
});

/** Waits until a process of this work folder has `flag value` on its command line. */
function waitForProcess(workDir: string, flag: string, value: string) {
  return waitFor(async () => processesWith(workDir).find((p) => p.args.some((a, i) => a === flag && p.args[i + 1] === value)), {
    timeoutMs: 15_000,
    intervalMs: 5,
    what: `an Envoy process with ${flag} ${value}`,
  });
}
