/** Workload -> ServiceRegistration: what the catalog says about a local workload. Pure. */
import { META } from '../../lib/consul-meta.js';
import type { CheckResult } from '../workloads/health-check.js';
import type { Workload } from '../workloads/workload.js';
import type { MeshCheck, ServiceRegistration } from './consul-client.js';

export interface RegistrationContext {
  nodeName: string;
  /** The address other hosts reach this host's workloads at. */
  address: string;
  /** The IPv6 address other hosts reach them at; absent: none is advertised. */
  address6?: string;
  zone: string;
}

export function serviceId(workload: Pick<Workload, 'name'>, nodeName: string): string {
  return `${workload.name}-${nodeName}`;
}

/**
 * `measured`: the app check's result where the agent runs it (catalog mode). `mesh`: whether
 * Envoy serves the workload's mesh listener, and why not; given whenever the data plane runs,
 * it adds the mesh listener check, so the instance passes only while its mesh port serves.
 */
export function toRegistration(
  workload: Workload,
  ctx: RegistrationContext,
  measured?: CheckResult,
  mesh?: MeshCheck,
): ServiceRegistration {
  const meta: Record<string, string> = {
    ...workload.meta,
    [META.spiffeId]: workload.spiffeId,
    [META.protocol]: workload.protocol,
    [META.meshPort]: String(workload.meshPort),
    [META.node]: ctx.nodeName,
  };
  if (ctx.zone !== '') meta[META.zone] = ctx.zone;
  const check = workload.check;
  return {
    id: serviceId(workload, ctx.nodeName),
    name: workload.name,
    address: ctx.address,
    ...(ctx.address6 === undefined ? {} : { address6: ctx.address6 }),
    port: workload.port,
    tags: workload.tags,
    meta,
    weight: workload.weight,
    meshPort: workload.meshPort,
    check:
      check === undefined
        ? undefined
        : {
            name: `${workload.name} ${check.kind} check`,
            kind: check.kind,
            target: check.target,
            interval: check.interval,
            timeout: check.timeout,
            ...(measured === undefined ? {} : { status: measured.status, output: measured.output }),
          },
    ...(mesh === undefined ? {} : { meshCheck: { status: mesh.status, output: mesh.output } }),
  };
}
