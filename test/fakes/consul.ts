/**
 * The shared fake of ConsulClient (agent/discovery/consul-client.ts) for unit
 * tests: an in-memory catalog with a raft-like index, blocking health queries
 * that wake on change (or abort), and switches for "down" and "rejects".
 * `new FakeConsul({ mode: 'agent' })` also has the agent-mode calls: check
 * statuses and pushed mesh listener checks (TTL checks whose output starts
 * empty, as Consul's do). Integration tests use the real Consul instead.
 */
import type {
  ConsulClient,
  HealthEntry,
  HealthQuery,
  HealthResult,
  MeshCheck,
  RegisterOptions,
  ServiceListResult,
  ServiceRegistration,
} from '../../agent/discovery/consul-client.js';
import { MeshError } from '../../lib/errors.js';

export interface FakeMeshCheck extends MeshCheck {
  /** Agent mode: the TTL it was registered with. */
  readonly ttlMs?: number;
}

export class FakeConsul implements ConsulClient {
  index = 1;
  /** When true every call fails as unreachable. */
  down = false;
  /** Service IDs whose registration Consul rejects (HTTP 400). */
  readonly rejectIds = new Set<string>();
  /** This node's registrations. */
  readonly registered = new Map<string, ServiceRegistration>();
  /** Instances of other nodes (and this one), keyed by service then id. */
  private readonly remote = new Map<string, Map<string, HealthEntry>>();
  /** The mesh listener check of each registered service that has one, by service ID. */
  readonly meshChecks = new Map<string, FakeMeshCheck>();
  private waiters: Array<() => void> = [];
  readonly calls: string[] = [];
  readonly checkStatuses?: () => Promise<ReadonlyMap<string, string>>;
  readonly setMeshCheck?: (serviceId: string, check: MeshCheck) => Promise<void>;
  private readonly mode: 'agent' | 'catalog' | undefined;

  /** Without a mode the fake has only the calls both modes share. */
  constructor(options: { mode?: 'agent' | 'catalog' } = {}) {
    this.mode = options.mode;
    if (options.mode !== 'agent') return;
    this.checkStatuses = async () => {
      this.gate('checkStatuses');
      // The fake runs no app checks: they pass; the mesh check decides.
      return new Map([...this.registered.keys()].map((id) => [id, this.meshChecks.get(id)?.status ?? 'passing']));
    };
    this.setMeshCheck = async (serviceId, check) => {
      this.gate(`mesh ${serviceId} ${check.status}`);
      const current = this.meshChecks.get(serviceId);
      if (current === undefined) throw new MeshError('MESH_E_CONSUL_REJECTED', `HTTP 404: Unknown check ID "mesh:${serviceId}"`);
      this.meshChecks.set(serviceId, { ...current, ...check });
      this.bump();
    };
  }

  private gate(call: string): void {
    this.calls.push(call);
    if (this.down) throw new MeshError('MESH_E_CONSUL_UNREACHABLE', `fake consul is down (${call})`);
  }

  private bump(): void {
    this.index++;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  /** Adds or replaces an instance as another host would register it. */
  setInstance(entry: Partial<HealthEntry> & { service: string; serviceId: string }): void {
    const full: HealthEntry = {
      node: 'node-x',
      nodeAddress: '10.0.0.9',
      datacenter: 'dc1',
      address: '10.0.0.9',
      port: 8080,
      tags: [],
      meta: {},
      weight: 1,
      taggedMeshPort: undefined,
      checks: [{ status: 'passing' }],
      ...entry,
    };
    const byId = this.remote.get(entry.service) ?? new Map<string, HealthEntry>();
    this.remote.set(entry.service, byId);
    byId.set(entry.serviceId, full);
    this.bump();
  }

  setHealth(service: string, serviceId: string, status: string): void {
    const entry = this.remote.get(service)?.get(serviceId);
    if (entry === undefined) throw new Error(`no instance ${serviceId}`);
    this.remote.get(service)?.set(serviceId, { ...entry, checks: [{ status }] });
    this.bump();
  }

  /** A restarted dev agent: everything gone, index starts again. */
  wipe(): void {
    this.registered.clear();
    this.meshChecks.clear();
    this.remote.clear();
    this.index = 1;
    this.bump();
  }

  pendingQueries(): number {
    return this.waiters.length;
  }

  async register(registration: ServiceRegistration, options?: RegisterOptions): Promise<void> {
    this.gate(`register ${registration.id}`);
    if (this.rejectIds.has(registration.id)) throw new MeshError('MESH_E_CONSUL_REJECTED', `HTTP 400: bad definition ${registration.id}`);
    this.registered.set(registration.id, registration);
    const mesh = registration.meshCheck;
    if (mesh === undefined) this.meshChecks.delete(registration.id);
    else if (this.mode === 'agent')
      this.meshChecks.set(registration.id, { status: mesh.status, output: '', ttlMs: options?.meshCheckTtlMs ?? 0 });
    else this.meshChecks.set(registration.id, mesh);
    this.bump();
  }

  async deregister(serviceId: string): Promise<void> {
    this.gate(`deregister ${serviceId}`);
    this.registered.delete(serviceId);
    this.meshChecks.delete(serviceId);
    this.bump();
  }

  async registeredIds(): Promise<ReadonlySet<string>> {
    this.gate('registeredIds');
    return new Set(this.registered.keys());
  }

  async healthService(service: string, query: HealthQuery): Promise<HealthResult> {
    this.gate(`health ${service}`);
    await this.block(query);
    return { index: this.index, entries: [...(this.remote.get(service)?.values() ?? [])] };
  }

  /** Services with an instance carrying meta mesh_spiffe_id (as Consul's filter `"mesh_spiffe_id" in ServiceMeta`). */
  async meshServices(query: HealthQuery): Promise<ServiceListResult> {
    this.gate('meshServices');
    await this.block(query);
    const names = [...this.remote.entries()]
      .filter(([, byId]) => [...byId.values()].some((e) => e.meta.mesh_spiffe_id !== undefined))
      .map(([name]) => name);
    return { index: this.index, names: names.sort() };
  }

  /** Removes an instance another host had registered. */
  removeInstance(service: string, serviceId: string): void {
    this.remote.get(service)?.delete(serviceId);
    if (this.remote.get(service)?.size === 0) this.remote.delete(service);
    this.bump();
  }

  /** A blocking query: waits until the index passes query.index (or the query is aborted). */
  private async block(query: HealthQuery): Promise<void> {
    if (query.index > 0 && query.index >= this.index) {
      await new Promise<void>((resolve, reject) => {
        const wake = () => resolve();
        this.waiters.push(wake);
        query.signal?.addEventListener('abort', () => {
          this.waiters = this.waiters.filter((w) => w !== wake);
          reject(new Error('aborted'));
        });
      });
      if (this.down) throw new MeshError('MESH_E_CONSUL_UNREACHABLE', 'fake consul went down during a blocking query');
    }
  }

  /** Wakes blocked queries without a change (e.g. to let them see `down`). */
  kick(): void {
    this.bump();
  }
}
