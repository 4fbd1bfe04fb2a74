/**
 * The world of the transparent-proxy tests, bench and demo: four network
 * namespace hosts on one veth segment (test/support/netns.ts), each also with
 * a ULA IPv6 address (fd00:77::N/64, nodad):
 * - infra (h0): `consul agent -dev` (its DNS on port 53, so a namespace's
 *   resolv.conf can point at it) and `mesh-controlplane run`;
 * - a (h1) and b (h2): meshed hosts, each its own `mesh-agent run` as root with
 *   transparentProxy on and its own Envoy running as a numeric user with no
 *   passwd entry (ENVOY_UID), an echo app (tproxy-echo-main) on APP_PORT on
 *   every address;
 * - c (h3): outside the mesh (no agent, rules untouched), an echo app too.
 * The Envoy binary is copied to a world-readable folder (the provisioned one is
 * under /root, which ENVOY_UID cannot traverse). Nothing touches the root
 * namespace's iptables; stop() ends every process by its pid, removes the
 * namespaces, /etc/netns/<ns> and the temp folder.
 */
import { chmod, copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { runChecked } from '../../lib/exec.js';
import { envoyProcessesOf } from './agent-leftovers.js';
import { startAgentProcess } from './agent-process.js';
import { childKeeper, type ManagedChild, processAlive } from './child.js';
import { createNetwork, type TestHost, type TestNetwork } from './netns.js';
import { dist, meshctl, startNetnsPeers } from './netns-peers.js';
import { tools } from './tools.js';
import { waitFor } from './wait.js';
import { workloadYaml } from './workload-files.js';

export const TD = 'example.org';
export const spiffeId = (sa: string) => `spiffe://${TD}/ns/default/sa/${sa}`;
/** Each host is its own namespace: the same ports serve on every host. */
export const APP_PORT = 8080;
export const MESH_PORT = { web: 21001, api: 21002 } as const;
export const ENVOY_ADMIN = 15000;
export const STATUS_PORT = 15100;
/** Envoy's user and group: numeric, with no passwd entry. */
export const ENVOY_UID = 15337;

export type Backend = 'nft' | 'legacy';

export interface Host6 extends TestHost {
  /** The host's ULA IPv6 address on eth0. */
  readonly address6: string;
}

/** One meshed host: its agent's files and the running agent (if any). */
export interface MeshedHost {
  readonly host: Host6;
  readonly name: 'web' | 'api';
  readonly dir: string;
  readonly dataDir: string;
  readonly configFile: string;
  /** The running `mesh-agent run`, or undefined once stopped or killed. */
  agent(): ManagedChild | undefined;
  /** Writes the agent config (transparentProxy over the defaults) and starts the agent; resolves once its status answers. */
  start(tproxy?: Record<string, unknown>, envoy?: Record<string, unknown>): Promise<void>;
  /** SIGTERM and wait (the agent removes its rules). */
  stop(): Promise<void>;
  /** kill -9 of the agent only: its Envoy may survive (returned, by pid). */
  kill9(): Promise<number[]>;
  /** GET /status of the agent, from inside the namespace. */
  status<T = AgentStatusDoc>(): Promise<T>;
  /** `mesh-agent tproxy ARGS --config <configFile>` inside the namespace. */
  tproxy(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }>;
}

export interface AgentStatusDoc {
  consul?: { state?: string };
  controlPlane?: { state?: string };
  envoy?: { state?: string; pid?: number };
  transparentProxy?: {
    state?: string;
    backend?: string;
    rules?: { expected: number; installed: number };
    drift?: { missing: string[]; unexpected: string[] };
    repairs?: number;
    warning?: string;
    error?: { code: string; message: string };
  };
  [key: string]: unknown;
}

export interface TproxyWorld {
  readonly net: TestNetwork;
  readonly base: string;
  readonly infra: Host6;
  readonly a: Host6;
  readonly b: Host6;
  readonly c: Host6;
  readonly consulAddr: string;
  readonly cpDir: string;
  /** The meshed hosts: a runs web, b runs api. */
  readonly web: MeshedHost;
  readonly api: MeshedHost;
  /** Long-running apps by host name (echo apps; their output has one line per request). */
  readonly apps: Map<string, ManagedChild>;
  /** Starts a tproxy echo app NAME on PORT in a host. */
  startApp(host: TestHost, name: string, port: number): Promise<ManagedChild>;
  /**
   * Points the host's resolv.conf (ip netns exec bind-mounts /etc/netns/<ns>/resolv.conf)
   * at a nameserver: default Consul's DNS on infra.
   */
  useConsulDns(host: TestHost, nameserver?: string): Promise<void>;
  stop(): Promise<void>;
}

export type { dist, meshctl };

/** An HTTP GET made by curl inside a host's namespace (as root); status 0 when no HTTP answer came. */
export async function curlIn(host: TestHost, url: string, options: { timeoutS?: number; method?: string; body?: string } = {}) {
  const args = ['-s', '-g', '-m', String(options.timeoutS ?? 3), '-w', '\n%{http_code}'];
  if (options.method !== undefined) args.push('-X', options.method);
  if (options.body !== undefined) args.push('--data-binary', '@-');
  const r = await host.exec('curl', [...args, url], {
    timeoutMs: (options.timeoutS ?? 3) * 1000 + 5_000,
    ...(options.body === undefined ? {} : { input: options.body }),
  });
  const cut = r.stdout.lastIndexOf('\n');
  return { status: Number(r.stdout.slice(cut + 1)) || 0, body: r.stdout.slice(0, cut), curlExit: r.code };
}

/** The echo app's answer (or undefined when no 200 came). */
export async function echoIn(host: TestHost, url: string, timeoutS = 3): Promise<{ app: string; xfcc: string; from: string } | undefined> {
  const r = await curlIn(host, url, { timeoutS });
  if (r.status !== 200) return undefined;
  try {
    return JSON.parse(r.body) as { app: string; xfcc: string; from: string };
  } catch {
    return undefined;
  }
}

/** The peer URI x-forwarded-client-cert names. */
export const xfccUri = (xfcc: string) => /(?:^|;)URI=([^;,]+)/.exec(xfcc)?.[1];

/** Requests an echo app printed (tproxy-echo-main), in order. */
export function appRequests(app: ManagedChild): Array<{ xfcc: string; from: string; path: string }> {
  return app
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{"request"'))
    .map((l) => (JSON.parse(l) as { request: { xfcc: string; from: string; path: string } }).request);
}

export async function startTproxyWorld(options: { prefix?: string } = {}): Promise<TproxyWorld> {
  const { envoy } = await tools();
  const base = await mkdtemp(path.join(os.tmpdir(), options.prefix ?? 'mesh-tproxy-'));
  // Envoy runs as ENVOY_UID: it must reach its binary and its folder in the agent's data dir.
  await chmod(base, 0o755);
  const binDir = path.join(base, 'bin');
  await mkdir(binDir, { mode: 0o755 });
  const envoyBinary = path.join(binDir, 'envoy');
  await copyFile(envoy.path, envoyBinary);
  await chmod(envoyBinary, 0o755);

  const net = await createNetwork(4);
  const { keep, stopAll } = childKeeper();
  const etcNetns: string[] = [];
  const meshed: MeshedHost[] = [];
  const stop = async () => {
    for (const m of meshed) await m.stop().catch(() => undefined);
    await stopAll();
    // Envoys an agent killed with -9 left behind, by pid.
    for (const m of meshed) for (const pid of await envoyProcessesOf(m.dataDir)) killPid(pid);
    await net.remove().catch(() => undefined);
    for (const dir of etcNetns) await rm(dir, { recursive: true, force: true });
    await rm(base, { recursive: true, force: true });
  };
  try {
    const hosts = net.hosts.map((h, i) => ({ ...h, address6: `fd00:77::${i + 1}` })) as Host6[];
    for (const h of hosts) {
      await runChecked('ip', ['-n', h.netns, 'addr', 'add', `${h.address6}/64`, 'dev', 'eth0', 'nodad'], 'MESH_E_NETNS');
    }
    const [infra, a, b, c] = hosts as [Host6, Host6, Host6, Host6];

    // infra: Consul (its DNS on 53 of infra's address) and the control plane.
    const { consulAddr, cp, cpDir, bundleFile } = await startNetnsPeers(infra, base, TD, keep, { consulDnsPort: 53 });
    await chmod(bundleFile, 0o644);

    const apps = new Map<string, ManagedChild>();
    const startApp = async (host: TestHost, name: string, port: number) => {
      const app = keep(host.spawn(process.execPath, [dist('test', 'support', 'tproxy-echo-main.js'), name, String(port)]));
      await waitFor(
        async () => (app.output().includes('listening') ? true : app.exited() ? Promise.reject(new Error(app.output())) : undefined),
        {
          what: `app ${name} in ${host.name}`,
        },
      );
      return app;
    };
    apps.set('a', await startApp(a, 'web', APP_PORT));
    apps.set('b', await startApp(b, 'api', APP_PORT));
    apps.set('c', await startApp(c, 'outsider', APP_PORT));

    const meshedHost = async (host: Host6, name: 'web' | 'api'): Promise<MeshedHost> => {
      const dir = path.join(base, name);
      const dataDir = path.join(dir, 'data');
      const workloadsDir = path.join(dir, 'workloads.d');
      await mkdir(workloadsDir, { recursive: true });
      await chmod(dir, 0o755);
      const token = (await meshctl(['token', 'create', '--data-dir', cpDir, '--node', `vm-${name}`, '--allow', spiffeId(name)])).trim();
      const joined = await host.exec(process.execPath, [
        dist('agent', 'main.js'),
        'join',
        '--controlplane',
        cp.address,
        '--token',
        token,
        '--ca-bundle',
        bundleFile,
        '--data-dir',
        dataDir,
      ]);
      if (joined.code !== 0) throw new Error(`mesh-agent join in ${host.name} exited ${joined.code}: ${joined.stderr}`);
      await writeFile(path.join(workloadsDir, `${name}.yaml`), workloadYaml({ name, port: APP_PORT, meshPort: MESH_PORT[name] }));
      const configFile = path.join(dir, 'agent.json');
      let agent: ManagedChild | undefined;
      const status = async <T>() => JSON.parse((await curlIn(host, `http://127.0.0.1:${STATUS_PORT}/status`)).body) as T;
      const m: MeshedHost = {
        host,
        name,
        dir,
        dataDir,
        configFile,
        agent: () => agent,
        async start(tproxy = {}, envoyExtra = {}) {
          const agentConfig = {
            nodeName: `vm-${name}`,
            trustDomain: TD,
            dataDir,
            workloadsDir,
            advertiseAddress: host.address,
            controlPlane: { address: cp.address, caBundle: bundleFile },
            consul: { address: consulAddr, retryInitial: '100ms', retryMax: '1s', syncInterval: '1s', watchWait: '10s' },
            envoy: {
              binary: envoyBinary,
              adminPort: ENVOY_ADMIN,
              concurrency: 1,
              drainTime: '1s',
              restartBackoffInitial: '200ms',
              restartBackoffMax: '2s',
              user: String(ENVOY_UID),
              group: String(ENVOY_UID),
              ...envoyExtra,
            },
            status: { listen: `127.0.0.1:${STATUS_PORT}` },
            transparentProxy: { enabled: true, checkInterval: '1s', ...tproxy },
          };
          await writeFile(configFile, JSON.stringify(agentConfig, null, 2));
          const child = keep(startAgentProcess(configFile, host.spawn));
          agent = child;
          await waitFor(
            async () => {
              if (child.exited()) throw new Error(`mesh-agent in ${host.name} exited:\n${child.output().slice(-3000)}`);
              return (await status<AgentStatusDoc>().catch(() => undefined)) === undefined ? undefined : true;
            },
            { timeoutMs: 60_000, what: `mesh-agent in ${host.name} to serve its status` },
          );
        },
        async stop() {
          const child = agent;
          agent = undefined;
          await child?.stop();
        },
        async kill9() {
          const child = agent;
          agent = undefined;
          if (child !== undefined && !child.exited()) {
            child.process.kill('SIGKILL');
            await waitFor(async () => (child.exited() ? true : undefined), { what: `the agent in ${host.name} to die` });
          }
          return envoyProcessesOf(dataDir);
        },
        status,
        async tproxy(args) {
          const r = await host.exec(process.execPath, [dist('agent', 'main.js'), 'tproxy', ...args, '--config', configFile], {
            timeoutMs: 30_000,
          });
          return { code: r.code, stdout: r.stdout, stderr: r.stderr };
        },
      };
      meshed.push(m);
      return m;
    };
    const web = await meshedHost(a, 'web');
    const api = await meshedHost(b, 'api');

    const useConsulDns = async (host: TestHost, nameserver = infra.address) => {
      const dir = path.join('/etc/netns', host.netns);
      await mkdir(dir, { recursive: true });
      if (!etcNetns.includes(dir)) etcNetns.push(dir);
      await writeFile(path.join(dir, 'resolv.conf'), `nameserver ${nameserver}\noptions timeout:1 attempts:2\n`);
    };

    return { net, base, infra, a, b, c, consulAddr, cpDir, web, api, apps, startApp, useConsulDns, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** SIGKILL a pid that is still alive. */
export function killPid(pid: number): void {
  if (processAlive(pid)) process.kill(pid, 'SIGKILL');
}
