/**
 * The agent's view of Consul: a few calls. The implementation over the `consul`
 * package (consul-http.ts) speaks either to the local Consul agent (mode
 * "agent") or to a server's catalog API (mode "catalog"); the shared fake in
 * test/fakes/consul.ts implements the same interface for unit tests.
 */

export type HealthStatus = 'passing' | 'warning' | 'critical';

export interface RegistrationCheck {
  readonly name: string;
  readonly kind: 'http' | 'tcp' | 'exec' | 'ttl' | 'grpc';
  readonly target: string | readonly string[];
  readonly interval: string;
  readonly timeout: string;
  /** Catalog mode: the status the agent measured itself, reported with the registration. */
  readonly status?: HealthStatus;
  readonly output?: string;
}

/**
 * Whether Envoy serves the workload's mesh listener, and why not. Registered as a
 * second check of the service (CheckID `mesh:<serviceId>`): a TTL check the agent
 * pushes in agent mode, a reported status in catalog mode.
 */
export interface MeshCheck {
  readonly status: 'passing' | 'critical';
  /** The reason, shown as the check's Output in Consul. */
  readonly output: string;
}

/** One service instance on this node, as registered in Consul. */
export interface ServiceRegistration {
  readonly id: string;
  readonly name: string;
  readonly address: string;
  /** The host's IPv6 address: tagged addresses lan_ipv4 (address) and lan_ipv6 (this), both on the app port. */
  readonly address6?: string;
  readonly port: number;
  readonly tags: readonly string[];
  readonly meta: Readonly<Record<string, string>>;
  readonly weight: number;
  /** Envoy's inbound port: also a tagged address `mesh` so the catalog shows both ports. */
  readonly meshPort: number;
  readonly check: RegistrationCheck | undefined;
  /** The mesh listener check; absent when the agent runs without its data plane. */
  readonly meshCheck?: MeshCheck;
}

export interface RegisterOptions {
  /** Agent mode: the TTL of the mesh listener check (it goes critical when nobody refreshes it). */
  readonly meshCheckTtlMs: number;
}

/** One instance of a service from the health API, with the parts the agent uses. */
export interface HealthEntry {
  readonly node: string;
  readonly nodeAddress: string;
  readonly datacenter: string;
  readonly serviceId: string;
  readonly service: string;
  readonly address: string;
  readonly port: number;
  readonly tags: readonly string[];
  readonly meta: Readonly<Record<string, string>>;
  readonly weight: number;
  readonly taggedMeshPort: number | undefined;
  /** Tagged address lan_ipv6's address when it is an IPv6 address (net.isIP 6); else absent. */
  readonly address6?: string;
  readonly checks: ReadonlyArray<{ readonly status: string }>;
}

export interface HealthQuery {
  /** 0 for an immediate answer; else block until the index passes this value or waitMs ends. */
  readonly index: number;
  readonly waitMs: number;
  readonly signal?: AbortSignal;
}

export interface HealthResult {
  readonly index: number;
  readonly entries: readonly HealthEntry[];
}

export interface ServiceListResult {
  readonly index: number;
  /** Service names, sorted. */
  readonly names: readonly string[];
}

export interface ConsulClient {
  /** Registers or updates one service instance of this node. */
  register(registration: ServiceRegistration, options: RegisterOptions): Promise<void>;
  deregister(serviceId: string): Promise<void>;
  /** IDs of the service instances Consul holds for this node (a restarted dev agent holds none). */
  registeredIds(): Promise<ReadonlySet<string>>;
  /** Agent mode: the status of each service's checks as Consul runs them (worst of), by service ID. */
  checkStatuses?(): Promise<ReadonlyMap<string, string>>;
  /**
   * Agent mode: sets the status and output of a registered service's mesh listener
   * check (a TTL check) without registering the service again; also resets its TTL.
   */
  setMeshCheck?(serviceId: string, check: MeshCheck): Promise<void>;
  /** Instances of a service with their checks; a blocking query when index > 0. */
  healthService(service: string, query: HealthQuery): Promise<HealthResult>;
  /**
   * Names of the services with at least one instance in the mesh (meta
   * `mesh_spiffe_id`), whatever their health; a blocking query when index > 0.
   * The transparent proxy watches them all (apps call any of them by address).
   */
  meshServices(query: HealthQuery): Promise<ServiceListResult>;
}
