/**
 * Keeps Consul's registrations of this node equal to the desired set. A sync
 * deregisters removed workloads, asks Consul which of ours it holds and
 * (re-)registers what is missing or changed; it runs on every change and every
 * syncInterval, so a restarted Consul that lost its state gets the
 * registrations back within one interval. Failures retry with backoff and
 * jitter; the connection state is logged once per change.
 *
 * The mesh listener check: where the client can push a check's status (agent
 * mode), it is a TTL check of MESH_CHECK_TTL_SYNCS sync intervals whose status
 * and output are pushed on every sync (a change does not register the service
 * again), so it also goes critical when the agent dies without deregistering.
 * Otherwise (catalog mode) it is part of the registration, and a change of its
 * status registers the service again, as the measured app check does.
 */

import { type BackoffPolicy, backoffDelay } from '../../lib/backoff.js';
import type { Clock, TimerHandle } from '../../lib/clock.js';
import { isMeshError, toMeshError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { worstStatus } from './catalog-view.js';
import type { ConsulClient, ServiceRegistration } from './consul-client.js';

/** The mesh listener check's TTL in agent mode, in sync intervals: two missed refreshes are tolerated. */
export const MESH_CHECK_TTL_SYNCS = 3;

export type ConnectionState = 'unknown' | 'connected' | 'unreachable';

export interface RegistrationState {
  readonly id: string;
  readonly name: string;
  /** by-sync: not this agent's to register (Kubernetes mode: the control plane's catalog sync registers the pod). */
  readonly state: 'pending' | 'registered' | 'rejected' | 'by-sync';
  readonly error?: string;
  /**
   * The worst status of its checks (the app check and the mesh listener check): as Consul
   * reports them (agent mode, read on every sync) or as last registered (catalog mode).
   */
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
  /** The mesh check status/output last pushed, by id (agent mode), to log changes once. */
  const pushedMesh = new Map<string, string>();
  const meshCheckTtlMs = MESH_CHECK_TTL_SYNCS * options.syncIntervalMs;
  const pushesMeshCheck = client.setMeshCheck !== undefined;
  /**
   * What a re-registration depends on: all of it, except a pushed mesh check's
   * status and output. While that check is critical its reason is also in the
   * registration (the check's Notes), because Consul syncs an output-only change
   * to its servers only every check_update_interval (5 min): a changed reason is
   * registered again, which reaches the catalog at once.
   */
  const key = (reg: ServiceRegistration) => {
    const mesh = reg.meshCheck;
    if (!pushesMeshCheck || mesh === undefined) return JSON.stringify(reg);
    return JSON.stringify({ ...reg, meshCheck: mesh.status === 'critical' ? { critical: mesh.output } : 'pushed' });
  };
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
      pushedMesh.delete(id);
    }
    if (stopped) return;
    const present = new Set(await client.registeredIds());
    for (const [id, reg] of desired) {
      const json = key(reg);
      if (present.has(id) && sent.get(id) === json) continue;
      if (rejected.has(id) && sent.get(id) === json) continue;
      if (stopped) return;
      attempted.add(id);
      try {
        await client.register(reg, { meshCheckTtlMs });
        pushedMesh.delete(id);
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
    await pushMeshChecks(present, 'all');
    confirmed = present;
    await readHealth();
  };

  const readHealth = async () => {
    if (stopped || client.checkStatuses === undefined) return;
    health = await client.checkStatuses();
  };

  /**
   * Agent mode: the registered mesh checks get their status and output: 'all'
   * (every sync: also refreshes their TTL) or only those that 'changed' since
   * the last push (a change of the data plane's serving state).
   */
  const pushMeshChecks = async (present: ReadonlySet<string>, which: 'all' | 'changed') => {
    if (client.setMeshCheck === undefined) return;
    for (const [id, reg] of desired) {
      if (stopped) return;
      const mesh = reg.meshCheck;
      if (mesh === undefined || !present.has(id) || rejected.has(id)) continue;
      if (which === 'changed' && pushedMesh.get(id) === JSON.stringify(mesh)) continue;
      try {
        await client.setMeshCheck(id, mesh);
      } catch (err) {
        if (!isMeshError(err, 'MESH_E_CONSUL_REJECTED')) throw err;
        // The check is gone while its service is there (someone registered it without ours): register it again.
        log.warn('mesh listener check update rejected; registering the service again', { serviceId: id, error: err });
        sent.delete(id);
        pushedMesh.delete(id);
        continue;
      }
      const pushed = JSON.stringify(mesh);
      if (pushedMesh.get(id) !== pushed) log.info('mesh listener check', { serviceId: id, status: mesh.status, output: mesh.output });
      pushedMesh.set(id, pushed);
    }
  };

  /** Catalog mode: the statuses this agent registered. */
  const registeredHealth = (reg: ServiceRegistration): string | undefined => {
    const statuses = [
      ...(reg.check === undefined ? [] : [reg.check.status ?? 'critical']),
      ...(reg.meshCheck === undefined ? [] : [reg.meshCheck.status]),
    ];
    return statuses.length === 0 ? undefined : worstStatus(statuses);
  };

  const schedule = (ms: number) => {
    timer?.cancel();
    if (stopped) return;
    timer = clock.setTimer(ms, () => {
      timer = undefined;
      void sync();
    });
  };

  /** What the next run must do: a whole sync, or only push the mesh checks that changed. */
  let pendingKind: 'full' | 'mesh' = 'full';

  const sync = (kind: 'full' | 'mesh' = 'full'): Promise<void> => {
    if (running !== undefined) {
      if (kind === 'full') pendingKind = 'full';
      again = true;
      return running;
    }
    pendingKind = kind;
    timer?.cancel();
    running = (async () => {
      do {
        again = false;
        const current = pendingKind;
        pendingKind = 'mesh';
        try {
          if (current === 'full') await syncOnce();
          else {
            await pushMeshChecks(confirmed, 'changed');
            await readHealth();
          }
          failures = 0;
          setConnection('connected');
        } catch (err) {
          failures++;
          pendingKind = 'full';
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
      // Only pushed mesh checks changed (the data plane's serving state): push those, nothing else.
      const whole =
        toRemove.size > 0 || [...next].some(([id, reg]) => sent.get(id) !== key(reg) || (!confirmed.has(id) && !rejected.has(id)));
      if (!stopped) void sync(whole ? 'full' : 'mesh');
    },
    syncNow: () => sync('full'),
    connection: () => connection,
    states: () =>
      [...desired.values()].map((r) => {
        const error = rejected.get(r.id);
        if (error !== undefined) return { id: r.id, name: r.name, state: 'rejected' as const, error };
        const done = sent.get(r.id) === key(r) && confirmed.has(r.id);
        const status = client.checkStatuses === undefined ? registeredHealth(r) : health.get(r.id);
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
      pushedMesh.clear();
    },
  };
}
