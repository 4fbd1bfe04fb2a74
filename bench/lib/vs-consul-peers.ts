/**
 * The Consul side of bench/vs-consul: a dev server on 127.0.0.1 and a plain
 * client agent on 127.0.0.2 joined to it (its own data dir, retry_join to the
 * server's Serf LAN port, the gRPC xDS port on, Connect on), both with
 * `limits.http_max_conns_per_client` raised as in bench/xds; then Consul's
 * sidecar for the local workload: registered on the client agent with its
 * upstreams, bootstrapped by `consul connect envoy -sidecar-for <id>
 * -bootstrap` and run on the given Envoy binary with concurrency 1.
 * Every child is stopped by its PID (ManagedChild.stop).
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { childEnv, type ManagedChild, startChild } from '../../test/support/child.js';
import { type ConsulDev, type ConsulPorts, startConsulDev } from '../../test/support/consul.js';
import { freePorts } from '../../test/support/ports.js';
import { httpGet, waitFor } from '../../test/support/wait.js';
import { CONSUL_MAX_CONNS_PER_CLIENT } from './xds-fixtures.js';

const run = promisify(execFile);
const SERVER_ADDR = '127.0.0.1';
export const CLIENT_ADDR = '127.0.0.2';

export interface ConsulClientAgent {
  readonly nodeName: string;
  readonly httpAddr: string;
  readonly grpcAddr: string;
  readonly pid: number;
  output(): string;
  stop(): Promise<void>;
}

export interface ConsulPair {
  server: ConsulDev;
  client: ConsulClientAgent;
}

/** The client agent's configuration: a plain agent joined to the server, xDS on its gRPC port. */
export function clientAgentConfig(o: {
  nodeName: string;
  dataDir: string;
  serverSerfLan: number;
  ports: { http: number; grpc: number; serfLan: number };
}): Record<string, unknown> {
  return {
    node_name: o.nodeName,
    server: false,
    datacenter: 'dc1',
    bind_addr: CLIENT_ADDR,
    client_addr: CLIENT_ADDR,
    advertise_addr: CLIENT_ADDR,
    data_dir: o.dataDir,
    log_level: 'warn',
    disable_update_check: true,
    retry_join: [`${SERVER_ADDR}:${o.serverSerfLan}`],
    connect: { enabled: true },
    limits: { http_max_conns_per_client: CONSUL_MAX_CONNS_PER_CLIENT },
    ports: { http: o.ports.http, grpc: o.ports.grpc, grpc_tls: -1, https: -1, dns: -1, serf_lan: o.ports.serfLan, serf_wan: -1 },
  };
}

async function startClientAgent(consulBinary: string, serverSerfLan: number, track: Track): Promise<ConsulClientAgent> {
  const base = await mkdtemp(path.join(os.tmpdir(), 'mesh-consul-client-'));
  track(() => rm(base, { recursive: true, force: true }));
  const dataDir = path.join(base, 'data');
  await mkdir(dataDir);
  const [http, grpc, serfLan] = (await freePorts(3, CLIENT_ADDR)) as [number, number, number];
  const nodeName = 'bench-consul-client';
  const configFile = path.join(base, 'client.json');
  const config = clientAgentConfig({ nodeName, dataDir, serverSerfLan, ports: { http, grpc, serfLan } });
  await writeFile(configFile, JSON.stringify(config, null, 2));
  const child = startChild(consulBinary, ['agent', `-config-file=${configFile}`]);
  const stop = track(() => child.stop());
  const httpAddr = `${CLIENT_ADDR}:${http}`;
  // Joined and able to reach the servers: it knows the leader, and the catalog has its node.
  const joined = async () => {
    const leader = await httpGet(`http://${httpAddr}/v1/status/leader`);
    if (leader.status !== 200 || JSON.parse(leader.body) === '') return undefined;
    const node = await httpGet(`http://${httpAddr}/v1/catalog/node/${nodeName}`);
    return node.status === 200 && node.body !== 'null' ? true : undefined;
  };
  await waitFor(joined, {
    timeoutMs: 60_000,
    intervalMs: 100,
    what: 'the Consul client agent to join the server',
    fatal: () => (child.exited() ? `it exited:\n${child.output().slice(-3000)}` : undefined),
  });
  return { nodeName, httpAddr, grpcAddr: `${CLIENT_ADDR}:${grpc}`, pid: child.pid, output: () => child.output(), stop };
}

/** Records a stop function (run at the end, newest first) and returns it, callable earlier; it runs once. */
export type Track = (stop: () => Promise<void>) => () => Promise<void>;

/**
 * Runs start, and again (up to `attempts` in all) when it failed because a port was
 * taken: Consul binds ports that freePorts found free a moment before, and another
 * process can take one meanwhile (seen once: `bind: address already in use`). Any
 * other failure is thrown at once.
 */
export async function onFreshPorts<T>(
  what: string,
  start: () => Promise<T>,
  options: { attempts?: number; log?: (line: string) => void } = {},
): Promise<T> {
  const attempts = options.attempts ?? 3;
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  for (let attempt = 1; ; attempt++) {
    try {
      return await start();
    } catch (err) {
      if (attempt >= attempts || !/address already in use/.test((err as Error).message)) throw err;
      log(
        `vs-consul: ${what}: a port was taken before Consul bound it; starting again on new ports (attempt ${attempt + 1} of ${attempts})`,
      );
    }
  }
}

export async function startConsulPair(consulBinary: string, track: Track): Promise<ConsulPair> {
  const { server, serfLan } = await onFreshPorts('the Consul server', async () => {
    const [http, grpc, serfLan, serfWan, serverPort] = (await freePorts(5, SERVER_ADDR)) as [number, number, number, number, number];
    const ports: ConsulPorts = { http, grpc, serfLan, serfWan, server: serverPort };
    // On failure it stops itself.
    const server = await startConsulDev({
      nodeName: 'bench-consul-server',
      ports,
      extraConfig: { limits: { http_max_conns_per_client: CONSUL_MAX_CONNS_PER_CLIENT } },
    });
    return { server, serfLan };
  });
  track(() => server.stop());
  // A failed try's child and folder are tracked, so they are stopped and removed at the end.
  const client = await onFreshPorts('the Consul client agent', () => startClientAgent(consulBinary, serfLan, track));
  return { server, client };
}

export interface SidecarWorkload {
  /** The service ID of the workload (the sidecar is `<id>-sidecar-proxy`). */
  id: string;
  appPort: number;
  sidecarPort: number;
  upstreams: ReadonlyArray<{ service: string; localPort: number }>;
}

/** Registers the workload with `connect.sidecar_service` and its upstreams on the client agent. */
export async function registerSidecarWorkload(clientHttpAddr: string, w: SidecarWorkload): Promise<void> {
  const body = {
    ID: w.id,
    Name: w.id,
    Port: w.appPort,
    Connect: {
      SidecarService: {
        Port: w.sidecarPort,
        Proxy: { Upstreams: w.upstreams.map((u) => ({ DestinationName: u.service, LocalBindPort: u.localPort })) },
      },
    },
  };
  const r = await fetch(`http://${clientHttpAddr}/v1/agent/service/register`, { method: 'PUT', body: JSON.stringify(body) });
  if (r.status !== 200) throw new Error(`register ${w.id} on the Consul client agent: HTTP ${r.status}: ${await r.text()}`);
}

export interface ConsulEnvoy {
  readonly child: ManagedChild;
  readonly adminUrl: string;
  readonly bootstrap: Record<string, unknown>;
  stop(): Promise<void>;
}

/**
 * `consul connect envoy -sidecar-for <id> -bootstrap` against the client agent's
 * HTTP and gRPC ports, then Envoy on that bootstrap (concurrency 1, as ours).
 */
export async function startConsulEnvoy(o: {
  consulBinary: string;
  envoyBinary: string;
  client: ConsulClientAgent;
  sidecarFor: string;
  adminPort: number;
  track: Track;
}): Promise<ConsulEnvoy> {
  const env = childEnv();
  for (const key of Object.keys(env)) if (key.startsWith('CONSUL_')) delete env[key];
  const { stdout } = await run(
    o.consulBinary,
    [
      'connect',
      'envoy',
      '-sidecar-for',
      o.sidecarFor,
      '-bootstrap',
      '-http-addr',
      `http://${o.client.httpAddr}`,
      '-grpc-addr',
      `http://${o.client.grpcAddr}`,
      '-admin-bind',
      `127.0.0.1:${o.adminPort}`,
    ],
    { env, maxBuffer: 16 * 1024 * 1024 },
  );
  const bootstrap = JSON.parse(stdout) as Record<string, unknown>;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mesh-consul-envoy-'));
  const file = path.join(dir, 'bootstrap.json');
  await writeFile(file, stdout);
  const child = startChild(o.envoyBinary, ['-c', file, '--use-dynamic-base-id', '--concurrency', '1', '--log-level', 'warning']);
  const stop = o.track(async () => {
    await child.stop();
    await rm(dir, { recursive: true, force: true });
  });
  return { child, adminUrl: `http://127.0.0.1:${o.adminPort}`, bootstrap, stop };
}
