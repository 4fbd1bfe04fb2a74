/**
 * ConsulClient over Consul's HTTP API through the `consul` package (papi on node:http,
 * one keep-alive agent). Blocking queries pass index/wait and are cancelled through
 * papi's request context when the caller's AbortSignal fires. Network failures and
 * timeouts become MESH_E_CONSUL_UNREACHABLE, HTTP errors MESH_E_CONSUL_REJECTED with
 * the status and Consul's message. The few calls the package cannot express go through
 * its own request method (same connection pool, token and errors), each with its reason.
 */
import http from 'node:http';
import Consul from 'consul';
import { META } from '../../lib/consul-meta.js';
import { worstStatus } from './catalog-view.js';
import {
  agentServiceBody,
  type CatalogNode,
  catalogDeregisterBody,
  catalogRegisterBody,
  type Json,
  meshCheckId,
  toHealthEntry,
} from './consul-bodies.js';
import { consulCall, type PapiContext } from './consul-call.js';
import type { ConsulClient, HealthQuery, HealthResult, ServiceListResult } from './consul-client.js';

/**
 * The bexpr filter of the mesh services: `ServiceMeta.mesh_spiffe_id != ""`
 * would also match instances without the key (Consul 1.22 reads a missing key
 * as ""), so the filter asks for the key itself.
 */
export const MESH_SERVICE_FILTER = `"${META.spiffeId}" in ServiceMeta`;

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

/** What the agent calls of the package. Its typings leave out papi's `ctx` and `timeout` and the request method. */
interface CallOptions {
  ctx?: PapiContext;
  timeout?: number;
  dc?: string;
  index?: string;
  wait?: string;
}
interface PapiRequest {
  name: string;
  path: string;
  query?: Record<string, string>;
  headers?: Record<string, string>;
  type?: 'json';
  body?: Json;
}
interface ConsulPackage {
  agent: {
    service: { list(o: CallOptions): Promise<Json>; deregister(o: CallOptions & { id: string }): Promise<unknown> };
    check: {
      list(o: CallOptions): Promise<Record<string, { ServiceID?: string; Status?: string }>>;
      pass(o: CallOptions & { id: string; note?: string }): Promise<unknown>;
      fail(o: CallOptions & { id: string; note?: string }): Promise<unknown>;
    };
  };
  catalog: {
    node: { services(o: CallOptions & { node: string }): Promise<{ Services?: Json } | null> };
    service: { list(o: CallOptions & { filter?: string }): Promise<[http.IncomingMessage, Record<string, unknown> | null]> };
  };
  health: { service(o: CallOptions & { service: string }): Promise<[http.IncomingMessage, Json[] | null]> };
  _put(request: PapiRequest): Promise<unknown>;
}

export function createConsulHttpClient(options: ConsulHttpOptions): ConsulClient {
  const timeoutMs = options.requestTimeoutMs ?? 10_000;
  const tokenDefaults = options.token === '' ? {} : { token: options.token };
  const consul = new Consul({
    baseUrl: `http://${options.address}/v1`,
    timeout: timeoutMs,
    defaults: tokenDefaults,
    agent: new http.Agent({ keepAlive: true, maxFreeSockets: 32 }),
  } as ConstructorParameters<typeof Consul>[0]) as unknown as ConsulPackage;
  const dc = options.datacenter === '' ? {} : { dc: options.datacenter };
  const tokenHeader: Record<string, string> = options.token === '' ? {} : { 'x-consul-token': options.token };
  const call = <T>(what: string, run: (ctx: PapiContext) => Promise<T>, signal?: AbortSignal) =>
    consulCall(options.address, what, run, signal);
  const node: CatalogNode = {
    nodeName: options.nodeName,
    nodeAddress: options.nodeAddress,
    datacenter: options.datacenter,
    ...(options.nodeMeta === undefined ? {} : { nodeMeta: options.nodeMeta }),
  };

  async function healthService(service: string, query: HealthQuery): Promise<HealthResult> {
    const blocking = query.index > 0 ? { index: String(query.index), wait: `${Math.max(1, Math.round(query.waitMs))}ms` } : {};
    const [res, raw] = await call(
      `GET /v1/health/service/${service}`,
      (ctx) =>
        consul.health.service({
          service,
          ...dc,
          ...blocking,
          ctx: Object.assign(ctx, { includeResponse: true }),
          // Consul adds up to wait/16 to a blocking query; the request timeout comes on top of the wait.
          timeout: timeoutMs + (query.index > 0 ? query.waitMs : 0),
        }),
      query.signal,
    );
    return { index: Number(res.headers['x-consul-index'] ?? 0), entries: (raw ?? []).map(toHealthEntry) };
  }

  async function meshServices(query: HealthQuery): Promise<ServiceListResult> {
    const blocking = query.index > 0 ? { index: String(query.index), wait: `${Math.max(1, Math.round(query.waitMs))}ms` } : {};
    const [res, raw] = await call(
      'GET /v1/catalog/services',
      (ctx) =>
        consul.catalog.service.list({
          ...dc,
          ...blocking,
          // Consul filters on the server (1.14+): only services with an instance carrying the meta key.
          filter: MESH_SERVICE_FILTER,
          ctx: Object.assign(ctx, { includeResponse: true }),
          timeout: timeoutMs + (query.index > 0 ? query.waitMs : 0),
        }),
      query.signal,
    );
    return { index: Number(res.headers['x-consul-index'] ?? 0), names: Object.keys(raw ?? {}).sort() };
  }

  if (options.mode === 'agent') {
    return {
      async register(reg, { meshCheckTtlMs }) {
        // Hand-written: the package's service body drops Weights and any tagged address but lan/wan (ours is `mesh`),
        // and has no replace-existing-checks parameter.
        const request: PapiRequest = {
          name: 'agent.service.register',
          path: '/agent/service/register',
          query: { 'replace-existing-checks': 'true' },
          headers: tokenHeader,
          type: 'json',
          body: agentServiceBody(reg, meshCheckTtlMs),
        };
        await call('PUT /v1/agent/service/register', () => consul._put(request));
      },
      async deregister(id) {
        await call(`PUT /v1/agent/service/deregister/${id}`, () => consul.agent.service.deregister({ id }));
      },
      async registeredIds() {
        const services = await call('GET /v1/agent/services', () => consul.agent.service.list({}));
        return new Set(Object.keys(services ?? {}));
      },
      async checkStatuses() {
        const checks = await call('GET /v1/agent/checks', () => consul.agent.check.list({}));
        const byService = new Map<string, string[]>();
        for (const check of Object.values(checks ?? {})) {
          const id = check.ServiceID ?? '';
          if (id === '') continue;
          byService.set(id, [...(byService.get(id) ?? []), check.Status ?? 'critical']);
        }
        return new Map([...byService].map(([id, statuses]) => [id, worstStatus(statuses)]));
      },
      async setMeshCheck(serviceId, check) {
        const id = meshCheckId(serviceId);
        const verb = check.status === 'passing' ? 'pass' : 'fail';
        // The note becomes the check's Output (the reason); an empty note clears it.
        await call(`PUT /v1/agent/check/${verb}/${id}`, () => consul.agent.check[verb]({ id, note: check.output }));
      },
      healthService,
      meshServices,
    };
  }

  return {
    async register(reg) {
      // Hand-written: the package's catalog body drops the service's Weights and tagged addresses, the checks' Output
      // and the Datacenter (Consul ignores ?dc= on this endpoint).
      const request: PapiRequest = {
        name: 'catalog.register',
        path: '/catalog/register',
        headers: tokenHeader,
        type: 'json',
        body: catalogRegisterBody(reg, node),
      };
      await call('PUT /v1/catalog/register', () => consul._put(request));
    },
    async deregister(id) {
      // Hand-written: the package sends the datacenter as ?dc=, which Consul ignores here; it belongs in the body.
      const request: PapiRequest = {
        name: 'catalog.deregister',
        path: '/catalog/deregister',
        headers: tokenHeader,
        type: 'json',
        body: catalogDeregisterBody(id, node),
      };
      await call('PUT /v1/catalog/deregister', () => consul._put(request));
    },
    async registeredIds() {
      const answer = await call(`GET /v1/catalog/node/${options.nodeName}`, () =>
        consul.catalog.node.services({ node: options.nodeName, ...dc }),
      );
      return new Set(Object.keys(answer?.Services ?? {}));
    },
    healthService,
    meshServices,
  };
}
