/**
 * ConsulClient over Consul's HTTP API (node:http keep-alive; the blocking queries and the
 * catalog register endpoint are plain HTTP). Network failures become
 * MESH_E_CONSUL_UNREACHABLE, HTTP errors MESH_E_CONSUL_REJECTED.
 */
import { MeshError } from '../../lib/errors.js';
import { createHttpClient, type HttpAnswer } from '../../lib/http-request.js';
import { worstStatus } from './catalog-view.js';
import type { ConsulClient, HealthEntry, RegistrationCheck, ServiceRegistration } from './consul-client.js';

export interface ConsulHttpOptions {
  mode: 'agent' | 'catalog';
  /** host:port of the HTTP API. */
  address: string;
  token: string;
  datacenter: string;
  /** This host's node name and address (the node of catalog-mode registrations). */
  nodeName: string;
  nodeAddress: string;
  nodeMeta?: Readonly<Record<string, string>>;
  requestTimeoutMs?: number;
}

type Json = Record<string, unknown>;

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

function serviceBody(reg: ServiceRegistration, nameKey: 'Name' | 'Service'): Json {
  return {
    ID: reg.id,
    [nameKey]: reg.name,
    Address: reg.address,
    Port: reg.port,
    Tags: reg.tags,
    Meta: reg.meta,
    Weights: { Passing: reg.weight, Warning: 1 },
    TaggedAddresses: { mesh: { Address: reg.address, Port: reg.meshPort } },
  };
}

export function toHealthEntry(raw: Json): HealthEntry {
  const node = (raw.Node ?? {}) as Json;
  const svc = (raw.Service ?? {}) as Json;
  const tagged = (svc.TaggedAddresses ?? {}) as Record<string, { Port?: number }>;
  const weights = (svc.Weights ?? {}) as { Passing?: number };
  return {
    node: String(node.Node ?? ''),
    nodeAddress: String(node.Address ?? ''),
    datacenter: String(node.Datacenter ?? ''),
    serviceId: String(svc.ID ?? ''),
    service: String(svc.Service ?? ''),
    address: String(svc.Address || node.Address || ''),
    port: Number(svc.Port ?? 0),
    tags: (svc.Tags as string[] | null) ?? [],
    meta: (svc.Meta as Record<string, string> | null) ?? {},
    weight: Number(weights.Passing ?? 1),
    taggedMeshPort: tagged.mesh?.Port,
    checks: ((raw.Checks as Json[] | null) ?? []).map((c) => ({ status: String(c.Status) })),
  };
}

export function createConsulHttpClient(options: ConsulHttpOptions): ConsulClient {
  const http = createHttpClient(`http://${options.address}`);
  const timeoutMs = options.requestTimeoutMs ?? 10_000;
  const dc = options.datacenter === '' ? '' : `dc=${encodeURIComponent(options.datacenter)}`;

  const call = async (method: string, path: string, body?: unknown, signal?: AbortSignal, waitMs = 0) => {
    const headers: Record<string, string> = {};
    if (options.token !== '') headers['X-Consul-Token'] = options.token;
    const timeout = AbortSignal.timeout(timeoutMs + waitMs);
    let response: HttpAnswer;
    try {
      response = await http.request(path, {
        method,
        headers,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: signal === undefined ? timeout : AbortSignal.any([signal, timeout]),
      });
    } catch (err) {
      throw new MeshError(
        'MESH_E_CONSUL_UNREACHABLE',
        `Consul at ${options.address} did not answer ${method} ${path}: ${(err as Error).message}`,
        {
          details: { address: options.address, path },
          cause: err,
        },
      );
    }
    const text = response.text;
    if (!response.ok) {
      throw new MeshError(
        'MESH_E_CONSUL_REJECTED',
        `Consul rejected ${method} ${path}: HTTP ${response.status}: ${text.trim().slice(0, 500)}`,
        {
          details: { address: options.address, path, status: response.status },
        },
      );
    }
    return { text, index: response.header('X-Consul-Index') };
  };
  const withDc = (path: string, more = '') => {
    const q = [dc, more].filter((s) => s !== '').join('&');
    return q === '' ? path : `${path}?${q}`;
  };
  const node = encodeURIComponent(options.nodeName);

  if (options.mode === 'agent') {
    return {
      async register(reg) {
        const body = { ...serviceBody(reg, 'Name'), ...(reg.check ? { Check: agentCheck(reg.check) } : {}) };
        await call('PUT', '/v1/agent/service/register?replace-existing-checks=true', body);
      },
      async deregister(id) {
        await call('PUT', `/v1/agent/service/deregister/${encodeURIComponent(id)}`);
      },
      async registeredIds() {
        const { text } = await call('GET', '/v1/agent/services');
        return new Set(Object.keys(JSON.parse(text) as Json));
      },
      async checkStatuses() {
        const { text } = await call('GET', '/v1/agent/checks');
        const byService = new Map<string, string[]>();
        for (const check of Object.values(JSON.parse(text) as Record<string, { ServiceID?: string; Status?: string }>)) {
          const id = check.ServiceID ?? '';
          if (id === '') continue;
          byService.set(id, [...(byService.get(id) ?? []), check.Status ?? 'critical']);
        }
        return new Map([...byService].map(([id, statuses]) => [id, worstStatus(statuses)]));
      },
      healthService: (service, query) => health(service, query),
    };
  }

  async function health(service: string, query: { index: number; waitMs: number; signal?: AbortSignal }) {
    const blocking = query.index > 0 ? `index=${query.index}&wait=${Math.max(1, Math.round(query.waitMs))}ms` : '';
    const { text, index } = await call(
      'GET',
      withDc(`/v1/health/service/${encodeURIComponent(service)}`, blocking),
      undefined,
      query.signal,
      query.index > 0 ? query.waitMs : 0,
    );
    const raw = (JSON.parse(text) as Json[] | null) ?? [];
    return { index: Number(index ?? 0), entries: raw.map(toHealthEntry) };
  }

  return {
    async register(reg) {
      const check = reg.check;
      const body: Json = {
        Node: options.nodeName,
        Address: options.nodeAddress,
        NodeMeta: { ...(options.nodeMeta ?? {}), 'mesh-agent': 'catalog' },
        Service: serviceBody(reg, 'Service'),
        SkipNodeUpdate: false,
        ...(options.datacenter === '' ? {} : { Datacenter: options.datacenter }),
      };
      if (check !== undefined) {
        body.Checks = [
          {
            CheckID: `service:${reg.id}`,
            Name: check.name,
            ServiceID: reg.id,
            Status: check.status ?? 'critical',
            Output: check.output ?? '',
          },
        ];
      }
      await call('PUT', '/v1/catalog/register', body);
    },
    async deregister(id) {
      const body: Json = { Node: options.nodeName, ServiceID: id };
      if (options.datacenter !== '') body.Datacenter = options.datacenter;
      await call('PUT', '/v1/catalog/deregister', body);
    },
    async registeredIds() {
      const { text } = await call('GET', withDc(`/v1/catalog/node/${node}`));
      const parsed = JSON.parse(text) as { Services?: Json } | null;
      return new Set(Object.keys(parsed?.Services ?? {}));
    },
    healthService: (service, query) => health(service, query),
  };
}
