/**
 * Kubernetes -> Consul, pure: the Services the sync selects, their
 * EndpointSlices' ready endpoints and the endpoints' Pods become Consul
 * registrations on the cluster's synthetic node, and per synced Service one
 * ServiceIdentity spec: the identities of the Pods behind its registrations
 * (`spiffe://<td>/ns/<ns>/sa/<pod's serviceAccountName>`), read from the
 * Kubernetes API, never from Consul meta.
 *
 * An endpoint is left out (and said why) when it is not ready, has no Pod
 * targetRef, names a Pod of another namespace, or its Pod is unknown or has
 * another uid: without the Pod there is no identity to vouch for it.
 */
import { createHash } from 'node:crypto';
import type { V1EndpointSlice, V1Pod, V1Service } from '@kubernetes/client-node';
import type { ServiceRegistration } from '../../agent/discovery/consul-client.js';
import { META } from '../../lib/consul-meta.js';
import { POLICY_SCHEMAS } from '../policy/policy-schemas.js';
import {
  ANNOTATION_MESH_PORT,
  ANNOTATION_PROTOCOL,
  ANNOTATION_SERVICE_NAME,
  ANNOTATION_SYNC,
  EXTERNAL_SOURCE,
  LABEL_MANAGED_BY,
  LABEL_SERVICE_NAME,
  MANAGED_BY,
  META_EXTERNAL_SOURCE,
  META_K8S_CLUSTER,
  META_K8S_NAMESPACE,
  META_K8S_SERVICE,
} from './sync-names.js';

const PROTOCOLS: ReadonlySet<string> = new Set(['http', 'http2', 'grpc', 'tcp']);

export interface ToConsulContext {
  readonly cluster: string;
  readonly trustDomain: string;
  /** Allowed namespaces ("*": all). */
  readonly namespaces: readonly string[];
  readonly meshPortName: string;
}

export interface KubeObjects {
  readonly services: readonly V1Service[];
  readonly slices: readonly V1EndpointSlice[];
  readonly pods: readonly V1Pod[];
}

/** The ServiceIdentity the sync keeps for one synced Service. */
export interface SyncedIdentity {
  /** The policy resource name: `k8s-<cluster>-<ns>-<service>` (shortened with a hash past 63 characters). */
  readonly name: string;
  readonly service: string;
  readonly namespace: string;
  /** Sorted, unique; empty when no endpoint is registered (then the sync keeps no resource). */
  readonly allowedIdentities: readonly string[];
}

export interface Skipped {
  readonly namespace: string;
  readonly service: string;
  readonly reason: string;
}

export interface ToConsulPlan {
  readonly registrations: readonly ServiceRegistration[];
  readonly identities: readonly SyncedIdentity[];
  readonly skipped: readonly Skipped[];
  /** Services synced (namespace/name). */
  readonly services: readonly string[];
}

const key = (ns: string, name: string) => `${ns}/${name}`;

/** Whether a Service is synced: the annotation decides, else its namespace; never one the sync created itself. */
export function isSelected(svc: V1Service, namespaces: readonly string[]): boolean {
  if (svc.metadata?.labels?.[LABEL_MANAGED_BY] === MANAGED_BY) return false;
  const annotation = svc.metadata?.annotations?.[ANNOTATION_SYNC];
  if (annotation === 'true') return true;
  if (annotation === 'false') return false;
  return namespaces.includes('*') || namespaces.includes(svc.metadata?.namespace ?? '');
}

/** A policy resource name (lower-case DNS-like, at most 63): long ones end with a hash of the whole. */
export function identityResourceName(cluster: string, ns: string, name: string): string {
  const full = `k8s-${cluster}-${ns}-${name}`;
  if (full.length <= 63) return full;
  const hash = createHash('sha256').update(full).digest('hex').slice(0, 8);
  return `${full.slice(0, 54).replace(/[.-]+$/, '')}-${hash}`;
}

/** The Consul service ID of one endpoint address: unique on the synthetic node. */
export function registrationId(ns: string, name: string, pod: string, address: string): string {
  return `k8s-${ns}-${name}-${pod}-${address.replace(/[.:]/g, '-')}`;
}

interface PortChoice {
  readonly app: number;
  readonly mesh: number;
  readonly protocol: string;
}

function choosePorts(svc: V1Service, slice: V1EndpointSlice, ctx: ToConsulContext): PortChoice | string {
  const ports = slice.ports ?? [];
  const annotated = svc.metadata?.annotations?.[ANNOTATION_MESH_PORT];
  let mesh: number | undefined;
  if (annotated !== undefined) {
    mesh = /^\d{1,5}$/.test(annotated) ? Number(annotated) : undefined;
    if (mesh === undefined || mesh < 1 || mesh > 65535) return `annotation ${ANNOTATION_MESH_PORT} is not a port number: ${annotated}`;
  } else {
    mesh = ports.find((p) => p.name === ctx.meshPortName)?.port;
    if (mesh === undefined) return `no port named ${ctx.meshPortName} and no annotation ${ANNOTATION_MESH_PORT}`;
  }
  const appSlicePort = ports.find((p) => (p.name ?? '') !== ctx.meshPortName && p.port !== undefined);
  const app = appSlicePort?.port ?? mesh;
  const protocolAnnotation = svc.metadata?.annotations?.[ANNOTATION_PROTOCOL];
  const protocol = protocolAnnotation ?? appSlicePort?.appProtocol ?? 'tcp';
  if (!PROTOCOLS.has(protocol)) return `protocol ${protocol} is not one of http, http2, grpc, tcp (annotation ${ANNOTATION_PROTOCOL})`;
  return { app, mesh, protocol };
}

export function planToConsul(objects: KubeObjects, ctx: ToConsulContext): ToConsulPlan {
  const pods = new Map(objects.pods.map((p) => [key(p.metadata?.namespace ?? '', p.metadata?.name ?? ''), p]));
  const slicesByService = new Map<string, V1EndpointSlice[]>();
  for (const slice of objects.slices) {
    const svc = slice.metadata?.labels?.[LABEL_SERVICE_NAME];
    if (svc === undefined) continue;
    const k = key(slice.metadata?.namespace ?? '', svc);
    slicesByService.set(k, [...(slicesByService.get(k) ?? []), slice]);
  }
  const registrations: ServiceRegistration[] = [];
  const identities: SyncedIdentity[] = [];
  const skipped: Skipped[] = [];
  const services: string[] = [];
  const sorted = [...objects.services].sort((a, b) =>
    key(a.metadata?.namespace ?? '', a.metadata?.name ?? '').localeCompare(key(b.metadata?.namespace ?? '', b.metadata?.name ?? '')),
  );
  const consulServiceName = POLICY_SCHEMAS.serviceName;
  for (const svc of sorted) {
    if (!isSelected(svc, ctx.namespaces)) continue;
    const ns = svc.metadata?.namespace ?? '';
    const name = svc.metadata?.name ?? '';
    const skip = (reason: string) => skipped.push({ namespace: ns, service: name, reason });
    const consulName = svc.metadata?.annotations?.[ANNOTATION_SERVICE_NAME] ?? name;
    if (!consulServiceName.safeParse(consulName).success) {
      skip(`${consulName} is not a Consul service name (annotation ${ANNOTATION_SERVICE_NAME})`);
      continue;
    }
    services.push(key(ns, name));
    const allowed = new Set<string>();
    const seen = new Set<string>();
    for (const slice of slicesByService.get(key(ns, name)) ?? []) {
      const ports = choosePorts(svc, slice, ctx);
      if (typeof ports === 'string') {
        skip(`EndpointSlice ${slice.metadata?.name}: ${ports}`);
        continue;
      }
      for (const ep of slice.endpoints ?? []) {
        if (ep.conditions?.ready === false) continue;
        const ref = ep.targetRef;
        if (ref?.kind !== 'Pod' || ref.name === undefined) {
          skip(`EndpointSlice ${slice.metadata?.name}: endpoint ${ep.addresses.join(',')} has no Pod targetRef`);
          continue;
        }
        // A Pod of another namespace would lend its identity across the namespace boundary: refused.
        if (ref.namespace !== undefined && ref.namespace !== ns) {
          skip(
            `EndpointSlice ${slice.metadata?.name}: endpoint ${ep.addresses.join(',')} names Pod ${ref.namespace}/${ref.name} of another namespace`,
          );
          continue;
        }
        const pod = pods.get(key(ns, ref.name));
        if (pod === undefined || (ref.uid !== undefined && ref.uid !== pod.metadata?.uid)) {
          skip(`EndpointSlice ${slice.metadata?.name}: Pod ${ref.name} of endpoint ${ep.addresses.join(',')} is not known`);
          continue;
        }
        const spiffeId = `spiffe://${ctx.trustDomain}/ns/${ns}/sa/${pod.spec?.serviceAccountName ?? 'default'}`;
        for (const address of ep.addresses) {
          const id = registrationId(ns, name, ref.name, address);
          if (seen.has(id)) continue;
          seen.add(id);
          allowed.add(spiffeId);
          registrations.push({
            id,
            name: consulName,
            address,
            port: ports.app,
            tags: ['kubernetes'],
            meta: {
              [META.spiffeId]: spiffeId,
              [META.protocol]: ports.protocol,
              [META.meshPort]: String(ports.mesh),
              [META.node]: `k8s/${ctx.cluster}/${ns}/${ref.name}`,
              [META_EXTERNAL_SOURCE]: EXTERNAL_SOURCE,
              [META_K8S_NAMESPACE]: ns,
              [META_K8S_SERVICE]: name,
              [META_K8S_CLUSTER]: ctx.cluster,
            },
            weight: 1,
            meshPort: ports.mesh,
            check: undefined,
          });
        }
      }
    }
    identities.push({
      name: identityResourceName(ctx.cluster, ns, name),
      service: consulName,
      namespace: ns,
      allowedIdentities: [...allowed].sort(),
    });
  }
  return { registrations, identities, skipped, services };
}
