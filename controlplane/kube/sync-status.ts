/**
 * What the catalog sync reports: the last reconcile of each direction (what
 * it holds, what it left out and why, conflicts with objects it does not
 * own), the last error, and two metrics on the control plane's registry:
 * `mesh_controlplane_k8s_sync_objects{direction,kind}` and
 * `mesh_controlplane_k8s_sync_errors_total{direction}`.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from '../../lib/logger.js';

export type SyncDirection = 'to-consul' | 'from-consul';

export interface ToConsulReport {
  readonly services: number;
  readonly registrations: number;
  readonly identities: number;
  readonly skipped: ReadonlyArray<{ readonly namespace: string; readonly service: string; readonly reason: string }>;
  readonly conflicts: readonly string[];
  /** Lists made by the three watches (the first ones, then each relist). */
  readonly lists: number;
  readonly atMs: number;
  readonly tookMs: number;
}

export interface FromConsulReport {
  readonly services: number;
  readonly endpointSlices: number;
  readonly skipped: ReadonlyArray<{ readonly service: string; readonly reason: string }>;
  /** Names in the namespace held by objects the sync did not create. */
  readonly conflicts: readonly string[];
  readonly atMs: number;
  readonly tookMs: number;
}

export interface SyncStatus {
  readonly cluster: string;
  readonly toConsul?: ToConsulReport;
  readonly fromConsul?: FromConsulReport;
  readonly lastError?: {
    readonly code: 'MESH_E_KUBE_SYNC_FAILED';
    readonly direction: SyncDirection;
    readonly message: string;
    readonly atMs: number;
  };
  readonly errors: number;
}

export interface SyncReporter {
  toConsul(report: ToConsulReport): void;
  fromConsul(report: FromConsulReport): void;
  error(direction: SyncDirection, message: string): void;
  status(): SyncStatus;
}

export function createSyncReporter(o: { cluster: string; registry?: Registry; logger: Logger; now: () => number }): SyncReporter {
  const registers = o.registry === undefined ? [] : [o.registry];
  const objects = new Gauge({
    name: 'mesh_controlplane_k8s_sync_objects',
    help: 'What the Kubernetes catalog sync holds: to-consul registrations and service identities, from-consul Services and EndpointSlices.',
    labelNames: ['direction', 'kind'],
    registers,
  });
  const errors = new Counter({
    name: 'mesh_controlplane_k8s_sync_errors_total',
    help: 'Failed watches and reconciles of the Kubernetes catalog sync (it retries).',
    labelNames: ['direction'],
    registers,
  });
  let status: SyncStatus = { cluster: o.cluster, errors: 0 };
  const lastLogged = new Map<SyncDirection, string>();
  // Logged when what is left out changes, not on every reconcile.
  const logOutcome = (direction: SyncDirection, skipped: readonly unknown[], conflicts: readonly string[]) => {
    const text = JSON.stringify({ skipped, conflicts });
    if (text === (lastLogged.get(direction) ?? '{"skipped":[],"conflicts":[]}')) return;
    lastLogged.set(direction, text);
    if (conflicts.length > 0)
      o.logger.warn('sync skipped names held by objects it does not own', { code: 'MESH_E_KUBE_SYNC_CONFLICT', direction, conflicts });
    if (skipped.length > 0) o.logger.warn('sync left objects out', { direction, skipped });
  };
  return {
    toConsul(report) {
      status = { ...status, toConsul: report };
      objects.set({ direction: 'to-consul', kind: 'registration' }, report.registrations);
      objects.set({ direction: 'to-consul', kind: 'service-identity' }, report.identities);
      logOutcome('to-consul', report.skipped, report.conflicts);
    },
    fromConsul(report) {
      status = { ...status, fromConsul: report };
      objects.set({ direction: 'from-consul', kind: 'service' }, report.services);
      objects.set({ direction: 'from-consul', kind: 'endpointslice' }, report.endpointSlices);
      logOutcome('from-consul', report.skipped, report.conflicts);
    },
    error(direction, message) {
      errors.inc({ direction });
      status = { ...status, errors: status.errors + 1, lastError: { code: 'MESH_E_KUBE_SYNC_FAILED', direction, message, atMs: o.now() } };
      o.logger.warn('sync error; retrying', { code: 'MESH_E_KUBE_SYNC_FAILED', direction, error: message });
    },
    status: () => status,
  };
}
