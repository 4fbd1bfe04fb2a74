/**
 * The Envoy supervisor wired to the shared Envoy fake and the fake clock, for
 * the supervisor's unit tests. Nothing waits on real time: tests await the
 * supervisor's promises and events, the fake's spawns, or drive the clock.
 */
import type { Test } from 'tap';
import { createEnvoySupervisor, type EnvoyEvent, type EnvoyEventKind, type EnvoySupervisorOptions } from '../../agent/envoy/supervisor.js';
import { createLogger } from '../../lib/logger.js';
import { FakeClock } from '../fakes/clock.js';
import { FakeEnvoyHost } from '../fakes/envoy.js';

export const BOOTSTRAP = {
  node: { id: 'n1', cluster: 'c' },
  admin: { address: { socket_address: { address: '127.0.0.1', port_value: 0 } } },
};
export const BINARY = '/usr/bin/envoy';

export interface Harness {
  clock: FakeClock;
  host: FakeEnvoyHost;
  events: EnvoyEvent[];
  /** Log messages (info and above). */
  logs: string[];
  supervisor: ReturnType<typeof createEnvoySupervisor>;
  /** The next event of that kind. */
  next(kind: EnvoyEventKind): Promise<EnvoyEvent>;
}

export function harness(t: Test, overrides: Partial<EnvoySupervisorOptions> = {}): Harness {
  const clock = new FakeClock();
  const host = new FakeEnvoyHost(() => clock.now());
  const logs: string[] = [];
  const supervisor = createEnvoySupervisor({
    binary: BINARY,
    workDir: '/var/lib/mesh/envoy',
    bootstrap: BOOTSTRAP,
    baseId: 77,
    drainTimeMs: 1_000,
    backoff: { initialMs: 100, maxMs: 1_000 },
    clock,
    log: createLogger({ level: 'info', sink: { write: (line) => logs.push(JSON.parse(line).msg) } }),
    spawn: host.spawn,
    adminRequest: host.admin,
    files: host.files,
    ...overrides,
  });
  const events: EnvoyEvent[] = [];
  supervisor.onEvent((e) => events.push(e));
  t.teardown(() => {
    for (const child of host.children) child.exit(null, 'SIGKILL');
  });
  const next = (kind: EnvoyEventKind) =>
    new Promise<EnvoyEvent>((resolve) => {
      const off = supervisor.onEvent((e) => {
        if (e.kind !== kind) return;
        off();
        resolve(e);
      });
    });
  return { clock, host, events, logs, supervisor, next };
}

/** A start() or reload() the test lets run on (and checks later): no unhandled rejection meanwhile. */
export function inBackground<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => {});
  return promise;
}

/**
 * stop() at this moment (or the stop already under way): it resolves, no fake
 * Envoy process of any kind is left, and the shared memory was removed.
 */
export async function stopLeavesNothing(t: Test, h: Harness, stopping: Promise<void> = h.supervisor.stop()): Promise<void> {
  await h.clock.runUntil(stopping);
  t.equal(h.supervisor.status().state, 'stopped', 'stopped');
  t.same(
    h.host.alive().map((c) => `${c.kind} ${c.pid}`),
    [],
    'no Envoy process is left (envoy, --version or --mode validate)',
  );
  t.ok(h.host.files.sharedMemoryRemovals >= 1, 'the shared memory was removed');
  t.equal(h.clock.pending(), 0, 'no timer is left');
}
