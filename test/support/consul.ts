/**
 * A real `consul agent -dev` per test: free ports, its own node name and data
 * folder, ready once it has elected itself leader. Several run at once.
 * restartableConsul() keeps its ports across stop and start, like a restarted
 * Consul that lost its state.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { MeshError } from '../../lib/errors.js';
import { type ManagedChild, startChild } from './child.js';
import { freePorts } from './ports.js';
import { tools } from './tools.js';
import { httpGet, waitFor } from './wait.js';

export interface ConsulPorts {
  http: number;
  grpc: number;
  serfLan: number;
  serfWan: number;
  server: number;
}

/** GET a path of the HTTP API (e.g. /v1/catalog/services) and parse its JSON (undefined for an empty body). */
type ConsulApi = <T = unknown>(apiPath: string) => Promise<T>;

export interface ConsulDev {
  readonly nodeName: string;
  /** host:port of the HTTP API. */
  readonly httpAddr: string;
  readonly httpPort: number;
  readonly grpcPort: number;
  readonly serverPort: number;
  readonly dataDir: string;
  readonly pid: number;
  api: ConsulApi;
  output(): string;
  stop(): Promise<void>;
}

export interface ConsulDevOptions {
  nodeName?: string;
  readyTimeoutMs?: number;
  /** More agent configuration, e.g. `{ limits: { http_max_conns_per_client: 1000 } }`. */
  extraConfig?: Record<string, unknown>;
  /** The ports to listen on; default free ones. */
  ports?: ConsulPorts;
}

async function pickPorts(): Promise<ConsulPorts> {
  const [http, grpc, serfLan, serfWan, server] = (await freePorts(5)) as [number, number, number, number, number];
  return { http, grpc, serfLan, serfWan, server };
}

function consulApi(httpAddr: string): ConsulApi {
  return async <T>(apiPath: string): Promise<T> => {
    const { status, body } = await httpGet(`http://${httpAddr}${apiPath}`);
    if (status !== 200) throw new Error(`consul ${apiPath}: HTTP ${status}: ${body}`);
    return (body === '' ? undefined : JSON.parse(body)) as T;
  };
}

/** The configuration file of a `consul agent -dev` that binds, serves and advertises on one address. */
export function consulDevConfig(o: { nodeName: string; dataDir: string; address: string; ports: ConsulPorts }): Record<string, unknown> {
  const { http, grpc, serfLan, serfWan, server } = o.ports;
  return {
    node_name: o.nodeName,
    bind_addr: o.address,
    client_addr: o.address,
    advertise_addr: o.address,
    data_dir: o.dataDir,
    log_level: 'warn',
    disable_update_check: true,
    ports: { http, grpc, grpc_tls: -1, dns: -1, serf_lan: serfLan, serf_wan: serfWan, server },
  };
}

export async function startConsulDev(options: ConsulDevOptions = {}): Promise<ConsulDev> {
  const { consul } = await tools();
  const nodeName = options.nodeName ?? `mesh-test-${randomBytes(4).toString('hex')}`;
  const base = await mkdtemp(path.join(os.tmpdir(), 'mesh-consul-'));
  const dataDir = path.join(base, 'data');
  const { http, grpc, serfLan, serfWan, server } = options.ports ?? (await pickPorts());
  const config = {
    ...consulDevConfig({ nodeName, dataDir, address: '127.0.0.1', ports: { http, grpc, serfLan, serfWan, server } }),
    ...options.extraConfig,
  };
  const configFile = path.join(base, 'config.json');
  await writeFile(configFile, JSON.stringify(config, null, 2));
  const child: ManagedChild = startChild(consul.path, ['agent', '-dev', `-config-file=${configFile}`]);
  const httpAddr = `127.0.0.1:${http}`;

  const stop = async () => {
    await child.stop();
    await rm(base, { recursive: true, force: true });
  };

  try {
    await waitFor(
      async () => {
        if (child.exited()) throw new MeshError('MESH_E_PROCESS_START', 'consul exited');
        const { status, body } = await httpGet(`http://${httpAddr}/v1/status/leader`);
        return status === 200 && JSON.parse(body) !== '' ? true : undefined;
      },
      { timeoutMs: options.readyTimeoutMs ?? 30_000, what: `consul ${nodeName} to elect a leader` },
    );
  } catch (err) {
    const output = child.output();
    await stop();
    throw new MeshError(
      'MESH_E_PROCESS_START',
      `consul dev agent did not become ready: ${(err as Error).message}\n${output.slice(-2000)}`,
      {
        cause: err,
      },
    );
  }

  return {
    nodeName,
    httpAddr,
    httpPort: http,
    grpcPort: grpc,
    serverPort: server,
    dataDir,
    pid: child.pid,
    api: consulApi(httpAddr),
    output: () => child.output(),
    stop,
  };
}

export interface RestartableConsul {
  readonly nodeName: string;
  readonly httpAddr: string;
  readonly ports: ConsulPorts;
  /** Starts a dev agent on the ports, with empty state; resolves once it is leader. */
  start(): Promise<void>;
  /** Stops it (if running) and removes its state. */
  stop(): Promise<void>;
  api: ConsulApi;
}

/** A `consul agent -dev` that keeps its ports (and node name) across stop and start; each start begins with empty state. */
export async function restartableConsul(options: Omit<ConsulDevOptions, 'ports'> = {}): Promise<RestartableConsul> {
  const ports = await pickPorts();
  const nodeName = options.nodeName ?? `mesh-rc-${randomBytes(4).toString('hex')}`;
  const httpAddr = `127.0.0.1:${ports.http}`;
  let running: ConsulDev | undefined;
  return {
    nodeName,
    httpAddr,
    ports,
    async start() {
      running = await startConsulDev({ ...options, nodeName, ports });
    },
    async stop() {
      await running?.stop();
      running = undefined;
    },
    api: consulApi(httpAddr),
  };
}
