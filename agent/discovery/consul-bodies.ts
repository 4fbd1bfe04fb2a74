/**
 * Pure: the JSON bodies the agent sends to Consul and the health entries it reads back.
 * Check IDs are an API (operators and dashboards see them): `service:<id>` for the
 * workload's own check, `mesh:<id>` for the mesh listener check.
 */
import { isIP } from 'node:net';
import { createInterner } from '../../lib/intern.js';
import type { HealthEntry, MeshCheck, RegistrationCheck, ServiceRegistration } from './consul-client.js';

export type Json = Record<string, unknown>;

export const appCheckId = (serviceId: string): string => `service:${serviceId}`;
export const meshCheckId = (serviceId: string): string => `mesh:${serviceId}`;
export const meshCheckName = (service: string): string => `${service} mesh listener`;
const MESH_CHECK_NOTES = "passing only while Envoy serves this workload's mesh listener (mesh-agent)";

/** The mesh check's Notes: what it means, and while it is critical why (so the catalog has the reason at once). */
export function meshCheckNotes(mesh: MeshCheck): string {
  return mesh.status === 'critical' && mesh.output !== '' ? `${MESH_CHECK_NOTES}; not serving: ${mesh.output}` : MESH_CHECK_NOTES;
}

function agentCheck(check: RegistrationCheck): Json {
  const out: Json = { Name: check.name };
  if (check.kind === 'ttl') return { ...out, TTL: check.target };
  const timing = { Interval: check.interval, Timeout: check.timeout };
  switch (check.kind) {
    case 'http':
      return { ...out, ...timing, HTTP: check.target };
    case 'tcp':
      return { ...out, ...timing, TCP: check.target };
    case 'grpc':
      return { ...out, ...timing, GRPC: check.target };
    default:
      return { ...out, ...timing, Args: check.target };
  }
}

/** A TTL in Consul's duration syntax: whole seconds when it is one, else milliseconds. */
export function consulDuration(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${Math.ceil(ms)}ms`;
}

function serviceBody(reg: ServiceRegistration, nameKey: 'Name' | 'Service'): Json {
  return {
    ID: reg.id,
    [nameKey]: reg.name,
    Address: reg.address,
    Port: reg.port,
    Tags: reg.tags,
    Meta: reg.meta,
    Weights: { Passing: reg.weight, Warning: 1 },
    TaggedAddresses: {
      mesh: { Address: reg.address, Port: reg.meshPort },
      ...(reg.address6 === undefined
        ? {}
        : { lan_ipv4: { Address: reg.address, Port: reg.port }, lan_ipv6: { Address: reg.address6, Port: reg.port } }),
    },
  };
}

/** Body of PUT /v1/agent/service/register: the app check (Consul runs it) and the mesh TTL check. */
export function agentServiceBody(reg: ServiceRegistration, meshCheckTtlMs: number): Json {
  const checks: Json[] = [];
  if (reg.check !== undefined) checks.push({ CheckID: appCheckId(reg.id), ...agentCheck(reg.check) });
  if (reg.meshCheck !== undefined) {
    checks.push({
      CheckID: meshCheckId(reg.id),
      Name: meshCheckName(reg.name),
      Notes: meshCheckNotes(reg.meshCheck),
      TTL: consulDuration(meshCheckTtlMs),
      Status: reg.meshCheck.status,
    });
  }
  return { ...serviceBody(reg, 'Name'), Checks: checks };
}

export interface CatalogNode {
  readonly nodeName: string;
  readonly nodeAddress: string;
  readonly nodeMeta?: Readonly<Record<string, string>>;
  readonly datacenter: string;
}

function reportedCheck(reg: ServiceRegistration, checkId: string, name: string, status: string, output: string, notes?: string): Json {
  return {
    CheckID: checkId,
    Name: name,
    ServiceID: reg.id,
    Status: status,
    Output: output,
    ...(notes === undefined ? {} : { Notes: notes }),
  };
}

/** Body of PUT /v1/catalog/register: node, service and the statuses the agent measured itself. */
export function catalogRegisterBody(reg: ServiceRegistration, node: CatalogNode): Json {
  const checks: Json[] = [];
  const check = reg.check;
  if (check !== undefined) checks.push(reportedCheck(reg, appCheckId(reg.id), check.name, check.status ?? 'critical', check.output ?? ''));
  const mesh: MeshCheck | undefined = reg.meshCheck;
  if (mesh !== undefined)
    checks.push(reportedCheck(reg, meshCheckId(reg.id), meshCheckName(reg.name), mesh.status, mesh.output, meshCheckNotes(mesh)));
  return {
    Node: node.nodeName,
    Address: node.nodeAddress,
    NodeMeta: { ...(node.nodeMeta ?? {}), 'mesh-agent': 'catalog' },
    Service: serviceBody(reg, 'Service'),
    SkipNodeUpdate: false,
    ...(node.datacenter === '' ? {} : { Datacenter: node.datacenter }),
    ...(checks.length === 0 ? {} : { Checks: checks }),
  };
}

/** Body of PUT /v1/catalog/deregister for one service of the node (its checks go with it). */
export function catalogDeregisterBody(serviceId: string, node: CatalogNode): Json {
  return { Node: node.nodeName, ServiceID: serviceId, ...(node.datacenter === '' ? {} : { Datacenter: node.datacenter }) };
}

/** Node names, addresses, datacenters and meta values repeat across the health answers of every service. */
const intern = createInterner();
const NO_TAGS: readonly string[] = Object.freeze([]);

/** Meta with its values interned (SPIFFE IDs repeat for every instance of a service). */
function internedMeta(meta: Record<string, string> | null | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (meta === null || meta === undefined) return out;
  // Consul's meta values are strings.
  for (const key of Object.keys(meta)) out[key] = intern(String(meta[key]));
  return out;
}

export function toHealthEntry(raw: Json): HealthEntry {
  const node = (raw.Node ?? {}) as Json;
  const svc = (raw.Service ?? {}) as Json;
  const tagged = (svc.TaggedAddresses ?? {}) as Record<string, { Address?: unknown; Port?: number } | undefined>;
  const address6 = tagged.lan_ipv6?.Address;
  const weights = (svc.Weights ?? {}) as { Passing?: number };
  return {
    node: intern(String(node.Node ?? '')),
    nodeAddress: intern(String(node.Address ?? '')),
    datacenter: intern(String(node.Datacenter ?? '')),
    serviceId: String(svc.ID ?? ''),
    service: String(svc.Service ?? ''),
    address: intern(String(svc.Address || node.Address || '')),
    port: Number(svc.Port ?? 0),
    tags: ((svc.Tags as string[] | null) ?? []).length === 0 ? NO_TAGS : (svc.Tags as string[]).map(intern),
    meta: internedMeta(svc.Meta as Record<string, string> | null),
    weight: Number(weights.Passing ?? 1),
    taggedMeshPort: tagged.mesh?.Port,
    ...(typeof address6 === 'string' && isIP(address6) === 6 ? { address6 } : {}),
    checks: ((raw.Checks as Json[] | null) ?? []).map((c) => ({ status: String(c.Status) })),
  };
}
