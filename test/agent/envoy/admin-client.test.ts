/**
 * The Envoy admin client: counting downstream connections from /stats, and
 * stop()'s drain (listeners drained, then wait for connections up to the
 * drain time, the process exiting, or admin failing) on the fake clock.
 */
import t from 'tap';
import { type AdminRequest, activeDownstream, drainConnections } from '../../../agent/envoy/admin-client.js';
import { createLogger } from '../../../lib/logger.js';
import { FakeClock } from '../../fakes/clock.js';
import { FakeEnvoyHost } from '../../fakes/envoy.js';

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

function setup(drainTimeMs = 1_000) {
  const clock = new FakeClock();
  const host = new FakeEnvoyHost(() => clock.now());
  const lines: string[] = [];
  const log = createLogger({ level: 'info', sink: { write: (line) => lines.push(JSON.parse(line).msg) } });
  let gone: (() => void) | undefined;
  let exited = false;
  const proc = {
    pid: 42,
    exit: () => (exited ? { code: 0, signal: null } : undefined),
    onGone: (fn: () => void) => {
      gone = fn;
    },
    end() {
      exited = true;
      gone?.();
    },
  };
  return { clock, host, lines, proc, options: { clock, log, drainTimeMs } };
}

t.test('drain: listeners drained, then polled every 100 ms until no connection is left', async (t) => {
  const { clock, host, lines, proc, options } = setup();
  host.active = [3, 1, 0];
  const began = clock.now();
  await clock.runUntil(drainConnections(host.admin, '127.0.0.1:15000', proc, options));
  t.same(host.adminCalls, [
    'POST 127.0.0.1:15000/drain_listeners?graceful',
    'GET 127.0.0.1:15000/stats?filter=downstream_cx_active',
    'GET 127.0.0.1:15000/stats?filter=downstream_cx_active',
    'GET 127.0.0.1:15000/stats?filter=downstream_cx_active',
  ]);
  t.equal(clock.now() - began, 200, 'two polls of 100 ms');
  t.ok(lines.includes('no downstream connection is left; stopping Envoy'));
});

t.test('drain: connections that stay open get the drain time, not more', async (t) => {
  const { clock, host, lines, proc, options } = setup(1_000);
  host.active = [2];
  const began = clock.now();
  await clock.runUntil(drainConnections(host.admin, '127.0.0.1:15000', proc, options));
  t.equal(clock.now() - began, 1_000);
  t.ok(lines.includes('drain time is over with connections still open'));
  t.equal(clock.pending(), 0);
});

t.test('drain: the process exiting ends the wait at once', async (t) => {
  const { clock, host, proc, options } = setup(10_000);
  host.active = [5];
  const draining = drainConnections(host.admin, '127.0.0.1:15000', proc, options);
  await FakeClock.flush();
  t.equal(clock.pending(), 1, 'waiting for the next poll');
  proc.end();
  await draining;
  t.equal(clock.pending(), 0, 'the poll timer is cancelled');
});

t.test('drain: admin failing stops the wait (the process is stopped anyway)', async (t) => {
  const { clock, lines, proc, options } = setup();
  const refusing: AdminRequest = async () => {
    throw new Error('connect ECONNREFUSED');
  };
  await drainConnections(refusing, '127.0.0.1:15000', proc, options);
  t.ok(lines.includes('could not drain Envoy listeners; stopping it anyway'));
  const statsFail: AdminRequest = async (_a, method) => (method === 'POST' ? { status: 200, body: 'OK' } : { status: 503, body: '' });
  await drainConnections(statsFail, '127.0.0.1:15000', proc, options);
  t.ok(lines.includes('could not read Envoy connection stats; stopping it anyway'));
  t.equal(clock.pending(), 0);
});
