/** The document GET /status returns, built from the agent's parts. Pure. */
import type { CatalogView } from '../discovery/catalog-view.js';
import type { WatchState } from '../discovery/catalog-watch.js';
import type { ConnectionState, RegistrationState } from '../discovery/registrar.js';
import type { CheckResult } from '../workloads/health-check.js';
import type { Workload, WorkloadFileError } from '../workloads/workload.js';

export interface StatusInput {
  node: string;
  consulMode: 'agent' | 'catalog';
  consulAddress: string;
  connection: ConnectionState;
  workloads: readonly Workload[];
  fileErrors: readonly WorkloadFileError[];
  registrations: readonly RegistrationState[];
  /** Catalog mode: the agent's own check results by workload name. */
  checks?: ReadonlyMap<string, CheckResult>;
  view: CatalogView;
  watches: readonly WatchState[];
}

export interface StatusDocument {
  node: string;
  consul: { mode: string; address: string; state: ConnectionState };
  workloads: Array<{
    name: string;
    file: string;
    spiffeId: string;
    port: number;
    meshPort: number;
    registration: string;
    error?: string;
    check?: string;
  }>;
  workloadErrors: Array<{ file: string; field: string; reason: string; code: 'MESH_E_WORKLOAD_INVALID' }>;
  upstreams: Array<{ service: string; instances: number; source: string; watch: string; error?: string }>;
  catalogVersion: number;
}

export function buildStatus(input: StatusInput): StatusDocument {
  const regByName = new Map(input.registrations.map((r) => [r.name, r]));
  const watchBy = new Map(input.watches.map((w) => [w.service, w]));
  return {
    node: input.node,
    consul: { mode: input.consulMode, address: input.consulAddress, state: input.connection },
    workloads: input.workloads.map((w) => {
      const reg = regByName.get(w.name);
      const check = input.checks?.get(w.name);
      return {
        name: w.name,
        file: w.file,
        spiffeId: w.spiffeId,
        port: w.port,
        meshPort: w.meshPort,
        registration: reg?.state ?? 'pending',
        ...(reg?.error === undefined ? {} : { error: reg.error }),
        ...(check === undefined ? {} : { check: check.status }),
      };
    }),
    workloadErrors: input.fileErrors.map((e) => ({ ...e, code: 'MESH_E_WORKLOAD_INVALID' as const })),
    upstreams: [...new Set([...input.watches.map((w) => w.service)])].sort().map((service) => {
      const watch = watchBy.get(service);
      const view = input.view.services[service];
      return {
        service,
        instances: view?.instances.length ?? 0,
        source: view?.source ?? 'none',
        watch: watch?.error !== undefined ? 'failing' : watch?.healthy ? 'ok' : 'starting',
        ...(watch?.error === undefined ? {} : { error: watch.error }),
      };
    }),
    catalogVersion: input.view.version,
  };
}
