/**
 * Keeps Consul's registrations of this node equal to the desired set. A sync
 * deregisters removed workloads, asks Consul which of ours it holds and
 * (re-)registers what is missing or changed; it runs on every change and every
 * syncInterval, so a restarted Consul that lost its state gets the
 * registrations back within one interval. Failures retry with backoff and
 * jitter; the connection state is logged once per change.
 */

import { type BackoffPolicy, backoffDelay } from '../../lib/backoff.js';
import type { Clock, TimerHandle } from '../../lib/clock.js';
import { isMeshError, toMeshError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import type { ConsulClient, ServiceRegistration } from './consul-client.js';

export type ConnectionState = 'unknown' | 'connected' | 'unreachable';

export interface RegistrationState {
  readonly id: string;
  readonly name: string;
  readonly state: 'pending' | 'registered' | 'rejected';
  readonly error?: string;
  /** Agent mode: the status of its check as Consul runs it (passing, warning, critical). */
  readonly health?: string;
}

export interface RegistrarOptions {
  client: ConsulClient;
  clock: Clock;
  log: Logger;
  backoff: BackoffPolicy;
  syncIntervalMs: number;
  random?: () => number;
  /** Called when the connection state changes. */
  onState?: (state: ConnectionState) => void;
}

export interface Registrar {
  /** Replaces the desired registrations and syncs soon. */
  setDesired(registrations: readonly ServiceRegistration[]): void;
  /** Runs a sync now and resolves when it (and any it caused) is done. */
  syncNow(): Promise<void>;
  connection(): ConnectionState;
  states(): readonly RegistrationState[];
  /** Stops syncing and deregisters everything this agent registered. */
  shutdown(): Promise<void>;
}

export function createRegistrar(options: RegistrarOptions): Registrar {
  const { client, clock, log } = options;
  let desired = new Map<string, ServiceRegistration>();
  /** What Consul got from us, by id, as JSON (to see changes). */
  const sent = new Map<string, string>();
  const rejected = new Map<string, string>();
  /**
   * Every ID a register call was sent for, recorded before the call: a call
   * whose answer was lost may still have registered it, so shutdown
   * deregisters it too.
   */
  const attempted = new Set<string>();
  const toRemove = new Set<string>();
  /** IDs Consul held (or took) at the last successful sync. */
  let confirmed = new Set<string>();
  let health: ReadonlyMap<string, string> = new Map();
  let connection: ConnectionState = 'unknown';
  let failures = 0;
  let timer: TimerHandle | undefined;
  let running: Promise<void> | undefined;
  let again = false;
  let stopped = false;

  const setConnection = (next: ConnectionState, err?: unknown) => {
    if (next === connection) return;
    connection = next;
    if (next === 'connected') log.info('consul reachable', {});
    else log.warn('consul unreachable; retrying with backoff', { error: err });
    options.onState?.(next);
  };

  const syncOnce = async () => {
    for (const id of [...toRemove]) {
      if (stopped) return;
      if (desired.has(id)) {
        toRemove.delete(id);
        continue;
      }
      try {
        await client.deregister(id);
        log.info('deregistered', { serviceId: id });
      } catch (err) {
        if (!isMeshError(err, 'MESH_E_CONSUL_REJECTED')) throw err;
        log.warn('deregister rejected', { serviceId: id, error: err });
      }
      toRemove.delete(id);
      sent.delete(id);
      attempted.delete(id);
    }
    if (stopped) return;
    const present = new Set(await client.registeredIds());
    for (const [id, reg] of desired) {
      const json = JSON.stringify(reg);
      if (present.has(id) && sent.get(id) === json) continue;
      if (rejected.has(id) && sent.get(id) === json) continue;
      if (stopped) return;
      attempted.add(id);
      try {
        await client.register(reg);
        if (rejected.delete(id) || !sent.has(id) || !present.has(id)) log.info('registered', { serviceId: id, service: reg.name });
        sent.set(id, json);
        present.add(id);
      } catch (err) {
        if (!isMeshError(err, 'MESH_E_CONSUL_REJECTED')) throw err;
        if (rejected.get(id) !== err.message) log.error('registration rejected by consul', { serviceId: id, error: err });
        rejected.set(id, err.message);
        sent.set(id, json);
      }
    }
    confirmed = present;
    if (client.checkStatuses !== undefined) health = await client.checkStatuses();
  };

  const schedule = (ms: number) => {
    timer?.cancel();
    if (stopped) return;
    timer = clock.setTimer(ms, () => {
      timer = undefined;
      void sync();
    });
  };

  const sync = (): Promise<void> => {
    if (running !== undefined) {
      again = true;
      return running;
    }
    timer?.cancel();
    running = (async () => {
      do {
        again = false;
        try {
          await syncOnce();
          failures = 0;
          setConnection('connected');
        } catch (err) {
          failures++;
          setConnection('unreachable', toMeshError(err));
          again = false;
          schedule(backoffDelay(options.backoff, failures - 1, options.random));
          return;
        }
      } while (again && !stopped);
      schedule(options.syncIntervalMs);
    })().finally(() => {
      running = undefined;
    });
    return running;
  };

  return {
    setDesired(registrations) {
      const next = new Map(registrations.map((r) => [r.id, r]));
      for (const id of desired.keys()) if (!next.has(id)) toRemove.add(id);
      for (const id of rejected.keys()) if (!next.has(id)) rejected.delete(id);
      desired = next;
      if (!stopped) void sync();
    },
    syncNow: () => sync(),
    connection: () => connection,
    states: () =>
      [...desired.values()].map((r) => {
        const error = rejected.get(r.id);
        if (error !== undefined) return { id: r.id, name: r.name, state: 'rejected' as const, error };
        const done = sent.get(r.id) === JSON.stringify(r) && confirmed.has(r.id);
        const status = health.get(r.id);
        return {
          id: r.id,
          name: r.name,
          state: done ? ('registered' as const) : ('pending' as const),
          ...(done && status !== undefined ? { health: status } : {}),
        };
      }),
    async shutdown() {
      stopped = true;
      timer?.cancel();
      // A sync in flight stops before its next call; its current call finishes (or times out).
      if (running !== undefined) await running.catch(() => undefined);
      const ids = new Set([...attempted, ...sent.keys(), ...toRemove]);
      await Promise.all(
        [...ids].map(async (id) => {
          try {
            await client.deregister(id);
            log.info('deregistered', { serviceId: id });
          } catch (err) {
            log.warn('could not deregister on shutdown', { serviceId: id, error: err });
          }
        }),
      );
      sent.clear();
      attempted.clear();
    },
  };
}
