/**
 * The world of the data-plane tests, with the real peers: a control plane
 * (in process) and a Consul dev agent; the echo apps web and api with free
 * mesh ports; and hosts: an agent configuration with the data plane on (the
 * provisioned Envoy, admin on a free port), joined to a control plane with a
 * token for its node, and its workload files. Everything is stopped or
 * removed when the test that made it ends.
 */
import type { Test } from 'tap';
import { type AgentFixture, agentFixture, startAgentProcess } from './agent-process.js';
import type { ManagedChild } from './child.js';
import { type ConsulDev, startConsulDev } from './consul.js';
import { type JoinSource, joinNode, joinSource, startTestControlPlane, type TestControlPlane } from './controlplane.js';
import { type EchoAnswer, type EchoApp, getJson, startEchoApp } from './mesh-apps.js';
import { freePorts } from './ports.js';
import { tools } from './tools.js';
import { waitFor } from './wait.js';
import { webApiFiles } from './workload-files.js';

type Teardown = Pick<Test, 'teardown'>;

export const TRUST_DOMAIN = 'example.org';

export interface MeshPeers {
  cp: TestControlPlane;
  consul: ConsulDev;
  /** The control plane, for meshHost. */
  join: JoinSource;
}

/** A control plane (trust domain example.org unless given) and a Consul dev agent. */
export async function startMeshPeers(t: Teardown, options: Parameters<typeof startTestControlPlane>[0] = {}): Promise<MeshPeers> {
  const cp = await startTestControlPlane({ trustDomain: TRUST_DOMAIN, ...options });
  t.teardown(() => cp.stop());
  const consul = await startConsulDev();
  t.teardown(() => consul.stop());
  return { cp, consul, join: joinSource(cp) };
}

export interface WebApi {
  web: EchoApp;
  api: EchoApp;
  ports: { webMesh: number; apiMesh: number; apiLocal: number };
  /** web.yaml (web calls api at ports.apiLocal) and api.yaml; `check`: Consul checks each app's /health. */
  files(options?: { check?: boolean }): Record<string, string>;
}

/** The echo apps web and api, and free ports for their mesh listeners and for web's upstream api. */
export async function startWebApi(t: Teardown): Promise<WebApi> {
  const web = await startEchoApp('web');
  const api = await startEchoApp('api');
  t.teardown(() => Promise.all([web.close(), api.close()]));
  const [webMesh, apiMesh, apiLocal] = (await freePorts(3)) as [number, number, number];
  const ports = { webMesh, apiMesh, apiLocal };
  return { web, api, ports, files: (options) => webApiFiles({ web: web.port, api: api.port, ...ports }, options) };
}

export type MeshWorld = MeshPeers & WebApi;

/** The peers and the apps: what a test of one host needs. */
export async function startMeshWorld(t: Teardown, options: Parameters<typeof startTestControlPlane>[0] = {}): Promise<MeshWorld> {
  return { ...(await startMeshPeers(t, options)), ...(await startWebApi(t)) };
}

export interface MeshHostOptions {
  join: JoinSource;
  consulAddr: string;
  /** Default: the fixture's vm-<random>. */
  nodeName?: string;
  /** The SPIFFE IDs the join token allows; default every workload of the trust domain. */
  allow?: string[];
  /** Envoy settings over { binary: the provisioned Envoy, adminPort: a free port, concurrency: 1 }. */
  envoy?: Record<string, unknown>;
  /** More agent settings, e.g. `trustDomain: undefined` (taken from the join). */
  config?: Record<string, unknown>;
  /** File name -> content, in the workloads folder. */
  workloads: Record<string, string>;
}

export interface MeshHost {
  readonly fx: AgentFixture;
  readonly nodeName: string;
  /** Envoy's admin port. */
  readonly adminPort: number;
}

/** An agent configuration with the data plane on, joined as its node, with its workload files; not running yet. */
export async function meshHost(t: Teardown, options: MeshHostOptions): Promise<MeshHost> {
  const { envoy } = await tools();
  const [freeAdmin] = (await freePorts(1)) as [number];
  const envoyConfig = { binary: envoy.path, adminPort: freeAdmin, concurrency: 1, ...options.envoy };
  const fx = await agentFixture(options.consulAddr, {
    ...(options.nodeName === undefined ? {} : { nodeName: options.nodeName }),
    dataPlane: { enabled: true },
    envoy: envoyConfig,
    ...options.config,
  });
  t.teardown(() => fx.remove());
  const allow = options.allow ?? [`spiffe://${options.join.trustDomain}/ns/*/sa/*`];
  await joinNode(options.join, fx.nodeName, allow, fx.dataDir);
  for (const [file, text] of Object.entries(options.workloads)) await fx.writeWorkload(file, text);
  return { fx, nodeName: fx.nodeName, adminPort: envoyConfig.adminPort as number };
}

/** `mesh-agent run` for the host, stopped when the test ends. */
export function runAgent(t: Teardown, host: MeshHost): ManagedChild {
  const agent = startAgentProcess(host.fx.configFile);
  t.teardown(() => agent.stop());
  return agent;
}

/** The first answer through a local (upstream) port of the mesh; a timeout names the agent's last output, if given. */
export async function meshTraffic(
  localPort: number,
  options: { agent?: ManagedChild; timeoutMs?: number; what?: string } = {},
): Promise<EchoAnswer> {
  try {
    return await waitFor(() => getJson(localPort).catch(() => undefined), {
      timeoutMs: options.timeoutMs ?? 40_000,
      what: options.what ?? 'traffic through the mesh',
    });
  } catch (err) {
    if (options.agent === undefined) throw err;
    throw new Error(`${(err as Error).message}\n${options.agent.output().slice(-3000)}`);
  }
}
