/**
 * Workloads as the rest of the agent sees them: a validated file plus the
 * values derived from the agent config (SPIFFE ID, mesh port). Pure.
 */

import { parseDuration } from '../../lib/duration.js';
import { workloadId } from '../../lib/spiffe-id.js';
import type { MeshProtocol } from '../model/proxy-model.js';
import { CHECK_KINDS, type CheckKind, type WorkloadFile } from './schema.js';

export interface WorkloadCheck {
  readonly kind: CheckKind;
  /** URL, host:port, TTL duration, or argv for exec. */
  readonly target: string | readonly string[];
  readonly interval: string;
  readonly timeout: string;
  readonly intervalMs: number;
  readonly timeoutMs: number;
}

export interface Upstream {
  readonly service: string;
  readonly localPort: number;
  /** The namespace the upstream's servers live in (secure naming default); the caller's own when the file says nothing. */
  readonly namespace: string;
}

export interface Workload {
  readonly file: string;
  readonly name: string;
  readonly port: number;
  readonly meshPort: number;
  readonly protocol: MeshProtocol;
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly spiffeId: string;
  readonly tags: readonly string[];
  readonly meta: Readonly<Record<string, string>>;
  readonly weight: number;
  readonly check: WorkloadCheck | undefined;
  readonly upstreams: readonly Upstream[];
  /** Transparent proxy opt-outs (workload file `transparentProxy`); absent: captured both ways. */
  readonly transparentProxy?: { readonly inbound: boolean; readonly outbound: boolean; readonly runAsUser?: number };
  /** Workload file `accessLog`; absent: the agent's default. */
  readonly accessLog?: boolean;
}

/** A problem with one workload file: which file, which field, why. */
export interface WorkloadFileError {
  readonly file: string;
  /** Field path such as `upstreams[0].localPort`; "" for the whole document. */
  readonly field: string;
  readonly reason: string;
}

export function toCheck(check: WorkloadFile['check']): WorkloadCheck | undefined {
  if (check === undefined) return undefined;
  const kind = CHECK_KINDS.find((k) => check[k] !== undefined) as CheckKind;
  return {
    kind,
    target: check[kind] as string | string[],
    interval: check.interval,
    timeout: check.timeout,
    intervalMs: parseDuration(check.interval) as number,
    timeoutMs: parseDuration(check.timeout) as number,
  };
}

export function toWorkload(file: string, parsed: WorkloadFile, trustDomain: string, inboundPortOffset: number): Workload {
  const serviceAccount = parsed.serviceAccount ?? parsed.name;
  return {
    file,
    name: parsed.name,
    port: parsed.port,
    meshPort: parsed.meshPort ?? parsed.port + inboundPortOffset,
    protocol: parsed.protocol,
    namespace: parsed.namespace,
    serviceAccount,
    spiffeId: workloadId(trustDomain, parsed.namespace, serviceAccount).toString(),
    tags: parsed.tags,
    meta: parsed.meta,
    weight: parsed.weight,
    check: toCheck(parsed.check),
    upstreams: parsed.upstreams.map((u) => ({ service: u.service, localPort: u.localPort, namespace: u.namespace ?? parsed.namespace })),
    transparentProxy: parsed.transparentProxy,
    ...(parsed.accessLog === undefined ? {} : { accessLog: parsed.accessLog }),
  };
}

/** Every upstream service name of the workloads, sorted and unique. */
export function upstreamServices(workloads: Iterable<Workload>): string[] {
  const names = new Set<string>();
  for (const w of workloads) for (const u of w.upstreams) names.add(u.service);
  return [...names].sort();
}
