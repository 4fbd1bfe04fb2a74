/**
 * Consul -> Kubernetes, pure: the mesh services of VMs (instances carrying
 * `mesh_spiffe_id`; a service with any instance registered by a Kubernetes
 * sync is a Kubernetes service and is left out) become selector-less
 * headless Services with EndpointSlices in one namespace, so pods resolve them
 * by Kubernetes name. Every object carries the ownership labels and an
 * annotation with the hash of its content (the sync compares hashes, so an
 * unchanged object is never rewritten). Identities are not copied: who may
 * serve a VM service is what the control plane's policy says.
 */
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import type { HealthEntry } from '../../agent/discovery/consul-client.js';
import {
  EXTERNAL_SOURCE,
  LABEL_CLUSTER,
  LABEL_CONSUL_SERVICE,
  LABEL_MANAGED_BY,
  LABEL_SERVICE_NAME,
  LABEL_SLICE_MANAGED_BY,
  MANAGED_BY,
  META_EXTERNAL_SOURCE,
  SLICE_MANAGER,
} from './sync-names.js';

/** Annotation holding the hash of what the sync wrote (compared instead of the whole object). */
export const ANNOTATION_HASH = 'vm-mesh.io/sync-hash';

export interface FromConsulContext {
  readonly cluster: string;
  readonly namespace: string;
  /** The synthetic node of this cluster's Kubernetes -> Consul registrations (never mirrored back). */
  readonly syncNode: string;
}

export interface DesiredObjects {
  readonly services: readonly V1Service[];
  readonly slices: readonly V1EndpointSlice[];
  readonly skipped: ReadonlyArray<{ readonly service: string; readonly reason: string }>;
}

/** A Consul name as a Kubernetes Service name (RFC 1035 label), or undefined when it cannot be one. */
export function kubeServiceName(consulName: string): string | undefined {
  const name = consulName.toLowerCase().replace(/_/g, '-');
  return /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/.test(name) ? name : undefined;
}

/** Instances of VMs: not on the sync's node, not registered by any Kubernetes sync. */
export function isVmEntry(entry: HealthEntry, syncNode: string): boolean {
  return entry.node !== syncNode && entry.meta[META_EXTERNAL_SOURCE] !== EXTERNAL_SOURCE;
}

function hashOf(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest('hex').slice(0, 16);
}

function labels(ctx: FromConsulContext, consulName: string): Record<string, string> {
  return { [LABEL_MANAGED_BY]: MANAGED_BY, [LABEL_CLUSTER]: ctx.cluster, [LABEL_CONSUL_SERVICE]: consulName };
}

function withHash<T extends { metadata?: { annotations?: Record<string, string> } }>(obj: T): T {
  const hash = hashOf(obj);
  return { ...obj, metadata: { ...obj.metadata, annotations: { ...obj.metadata?.annotations, [ANNOTATION_HASH]: hash } } };
}

/** `byService`: the health entries of each mesh service name (all of them; non-VM ones are dropped here). */
export function planFromConsul(byService: ReadonlyMap<string, readonly HealthEntry[]>, ctx: FromConsulContext): DesiredObjects {
  const services: V1Service[] = [];
  const slices: V1EndpointSlice[] = [];
  const skipped: Array<{ service: string; reason: string }> = [];
  const taken = new Map<string, string>();
  for (const consulName of [...byService.keys()].sort()) {
    const all = byService.get(consulName) ?? [];
    // A service with instances synced from Kubernetes is a Kubernetes service (its pods' own agents may register it
    // too): pods already reach it by its own Service, so it is not mirrored.
    if (all.some((e) => !isVmEntry(e, ctx.syncNode))) continue;
    const entries = all.filter((e) => isIP(e.address) === 4);
    if (entries.length === 0) continue;
    const name = kubeServiceName(consulName);
    if (name === undefined) {
      skipped.push({ service: consulName, reason: 'its name cannot be a Kubernetes Service name' });
      continue;
    }
    const other = taken.get(name);
    if (other !== undefined) {
      skipped.push({ service: consulName, reason: `${other} maps to the same Kubernetes name ${name}` });
      continue;
    }
    taken.set(name, consulName);
    // One slice per (app port, mesh port): the ports of a slice apply to all its endpoints.
    const groups = new Map<string, HealthEntry[]>();
    for (const e of entries) {
      const mesh = e.taggedMeshPort ?? e.port;
      const k = `${e.port}-${mesh}`;
      groups.set(k, [...(groups.get(k) ?? []), e]);
    }
    const first = [...groups.keys()].sort()[0] as string;
    const [appPort, meshPort] = first.split('-').map(Number) as [number, number];
    services.push(
      withHash<V1Service>({
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name, namespace: ctx.namespace, labels: labels(ctx, consulName), annotations: {} },
        spec: {
          clusterIP: 'None',
          ports: [
            { name: 'app', port: appPort, targetPort: appPort, protocol: 'TCP' },
            ...(meshPort === appPort ? [] : [{ name: 'mesh', port: meshPort, targetPort: meshPort, protocol: 'TCP' }]),
          ],
        },
      }),
    );
    for (const [k, group] of [...groups].sort(([a], [b]) => a.localeCompare(b))) {
      const [app, mesh] = k.split('-').map(Number) as [number, number];
      const sorted = [...group].sort((a, b) => a.serviceId.localeCompare(b.serviceId));
      slices.push(
        withHash<V1EndpointSlice>({
          apiVersion: 'discovery.k8s.io/v1',
          kind: 'EndpointSlice',
          metadata: {
            name: `${name}-vm-${k}`,
            namespace: ctx.namespace,
            labels: { ...labels(ctx, consulName), [LABEL_SERVICE_NAME]: name, [LABEL_SLICE_MANAGED_BY]: SLICE_MANAGER },
            annotations: {},
          },
          addressType: 'IPv4',
          ports: [{ name: 'app', port: app, protocol: 'TCP' }, ...(mesh === app ? [] : [{ name: 'mesh', port: mesh, protocol: 'TCP' }])],
          endpoints: sorted.map((e) => ({
            addresses: [e.address],
            conditions: { ready: e.checks.every((c) => c.status === 'passing') },
          })),
        }),
      );
    }
  }
  return { services, slices, skipped };
}
