/**
 * Helpers of bench/xds (txn and checkOp also of bench/catalog-watch): the
 * catalog registered in Consul (1,000 services x 10 mesh instances, written
 * with txn batches), the same services as an in-process CatalogView, and free
 * port ranges.
 */
import net from 'node:net';
import { type CatalogInstance, type CatalogView, makeView, type ServiceView } from '../../agent/discovery/catalog-view.js';
import { type ConsulDev, startConsulDev } from '../../test/support/consul.js';

export const TRUST_DOMAIN = 'example.org';
export const SERVICES = 1_000;
export const INSTANCES = 10;
export const UPSTREAMS = 200;
export const INSTANCE_PORT = 8080;
export const INSTANCE_MESH_PORT = 18080;

export const serviceName = (i: number): string => `svc-${String(i).padStart(4, '0')}`;
export const serviceSpiffeId = (service: string): string => `spiffe://${TRUST_DOMAIN}/ns/default/sa/${service}`;
export const nodeName = (n: number): string => `bench-node-${n}`;
export const nodeAddress = (n: number): string => `10.0.${Math.floor(n / 250)}.${(n % 250) + 1}`;
/** The upstreams of the local workload: every fifth service. */
export const upstreamNames: readonly string[] = Array.from({ length: UPSTREAMS }, (_, i) => serviceName(i * (SERVICES / UPSTREAMS)));

/**
 * Consul's HTTP API accepts at most `limits.http_max_conns_per_client`
 * (default 200) connections from one client IP, and the agent holds one
 * blocking query per upstream service: with 200 upstreams it goes over and
 * gets HTTP 429. This dev agent has the limit raised so that the benchmark measures the data plane.
 */
export const CONSUL_MAX_CONNS_PER_CLIENT = 1_000;

/** The benchmark's Consul dev agent, with the connection limit raised. */
export const startBenchConsul = (): Promise<ConsulDev> =>
  startConsulDev({ extraConfig: { limits: { http_max_conns_per_client: CONSUL_MAX_CONNS_PER_CLIENT } } });

/** One PUT /v1/txn; throws on anything but 200. */
export async function txn(consulBase: string, ops: unknown[]): Promise<void> {
  const r = await fetch(`${consulBase}/v1/txn`, { method: 'PUT', body: JSON.stringify(ops) });
  if (r.status !== 200) throw new Error(`txn: HTTP ${r.status}: ${await r.text()}`);
}

/** A txn operation setting the check of one instance (passing or critical). */
export function checkOp(node: number, service: string, status: 'passing' | 'critical') {
  const id = `${service}-${node}`;
  return {
    Check: { Verb: 'set', Check: { Node: nodeName(node), CheckID: `check-${id}`, Name: 'bench', Status: status, ServiceID: id } },
  };
}

export const SIDECAR_PORT_BASE = 21_000;
/** The port of service number `s`'s Connect sidecars (one per instance, on the instance's node). */
export const sidecarPort = (s: number): number => SIDECAR_PORT_BASE + s;

/** A txn operation setting the check of one instance's Connect sidecar (bench/vs-consul). */
export function sidecarCheckOp(node: number, service: string, status: 'passing' | 'critical') {
  const id = `${service}-${node}-sidecar-proxy`;
  return {
    Check: { Verb: 'set', Check: { Node: nodeName(node), CheckID: `check-${id}`, Name: 'bench', Status: status, ServiceID: id } },
  };
}

/** A Connect sidecar (`Kind: connect-proxy`) for instance `node` of service number `s`, so Consul's upstream clusters have endpoints. */
function sidecarOp(node: number, s: number) {
  const service = serviceName(s);
  return {
    Service: {
      Verb: 'set',
      Node: nodeName(node),
      Service: {
        ID: `${service}-${node}-sidecar-proxy`,
        Service: `${service}-sidecar-proxy`,
        Kind: 'connect-proxy',
        Address: nodeAddress(node),
        Port: sidecarPort(s),
        // The txn API stores Weights as given: without them Passing is 0, which Consul's EDS sends as UNHEALTHY.
        Weights: { Passing: 1, Warning: 1 },
        Proxy: { DestinationServiceName: service, DestinationServiceID: `${service}-${node}`, LocalServicePort: INSTANCE_PORT },
      },
    },
  };
}

/**
 * Registers SERVICES x INSTANCES mesh instances (each with a passing check) on INSTANCES catalog nodes;
 * with `sidecars`, each instance also gets a Connect sidecar with its own passing check.
 */
export async function registerCatalog(consulBase: string, options: { sidecars?: boolean } = {}): Promise<void> {
  await txn(
    consulBase,
    Array.from({ length: INSTANCES }, (_, n) => ({ Node: { Verb: 'set', Node: { Node: nodeName(n), Address: nodeAddress(n) } } })),
  );
  const ops: unknown[] = [];
  for (let s = 0; s < SERVICES; s++) {
    const service = serviceName(s);
    for (let n = 0; n < INSTANCES; n++) {
      ops.push({
        Service: {
          Verb: 'set',
          Node: nodeName(n),
          Service: {
            ID: `${service}-${n}`,
            Service: service,
            Port: INSTANCE_PORT,
            Meta: { mesh_spiffe_id: serviceSpiffeId(service), mesh_protocol: 'http', mesh_port: String(INSTANCE_MESH_PORT) },
            TaggedAddresses: { mesh: { Address: nodeAddress(n), Port: INSTANCE_MESH_PORT } },
          },
        },
      });
      ops.push(checkOp(n, service, 'passing'));
      if (options.sidecars === true) ops.push(sidecarOp(n, s), sidecarCheckOp(n, service, 'passing'));
    }
  }
  const batches: unknown[][] = [];
  // 128 operations: the most one Consul txn takes (fewer Raft applies than smaller batches).
  for (let i = 0; i < ops.length; i += 128) batches.push(ops.slice(i, i + 128));
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < batches.length) await txn(consulBase, batches[next++] as unknown[]);
    }),
  );
}

/** The CatalogView the agent would hold for the given services (all instances healthy except those in `down`). */
export function benchView(version: number, services: readonly string[], down: ReadonlySet<string> = new Set()): CatalogView {
  const views: ServiceView[] = services.map((service) => {
    const instances: CatalogInstance[] = [];
    for (let n = 0; n < INSTANCES; n++) {
      const id = `${service}-${n}`;
      if (down.has(id)) continue;
      instances.push({
        id,
        node: nodeName(n),
        address: nodeAddress(n),
        appPort: INSTANCE_PORT,
        meshPort: INSTANCE_MESH_PORT,
        spiffeId: serviceSpiffeId(service),
        protocol: 'http',
        tags: [],
        meta: { mesh_spiffe_id: serviceSpiffeId(service), mesh_protocol: 'http', mesh_port: String(INSTANCE_MESH_PORT) },
        weight: 1,
        datacenter: 'dc1',
        zone: '',
        health: 'passing',
      });
    }
    return { name: service, instances, source: 'consul' };
  });
  return makeView(version, views);
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** The first run of `count` consecutive free loopback ports at or above `from` (tried in steps of `count`). */
export async function freePortRange(count: number, from: number, below = 60_000): Promise<number> {
  for (let start = from; start + count <= below; start += count) {
    let ok = true;
    for (let p = start; p < start + count && ok; p++) ok = await portFree(p);
    if (ok) return start;
  }
  throw new Error(`no ${count} consecutive free ports between ${from} and ${below}`);
}
