/**
 * The peers of a multi-host network-namespace test, on one host (h0): a
 * Consul dev agent and `mesh-controlplane run` on its address; plus curl in a
 * namespace and meshctl in the root namespace (the control plane's admin
 * socket is a file in its data folder).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { runChecked } from '../../lib/exec.js';
import { repoRoot } from '../../scripts/repo-root.js';
import { childEnv, type ManagedChild } from './child.js';
import { consulDevConfig } from './consul.js';
import { type ControlPlaneProcess, spawnControlPlane } from './controlplane.js';
import type { TestHost } from './netns.js';
import { tools } from './tools.js';
import { waitFor } from './wait.js';

/** Each host is its own namespace: the same ports serve on every host. */
export const CONSUL_PORTS = { http: 8500, grpc: 8502, serfLan: 8301, serfWan: 8302, server: 8300 };
export const CP_PORT = 8443;

/** A file of the built programs: dist/<parts>. */
export const dist = (...parts: string[]) => path.join(repoRoot(), 'dist', ...parts);

/** An HTTP request made by curl inside a host's namespace. */
export async function httpIn(host: TestHost, url: string, options: { method?: string; body?: string } = {}) {
  const args = ['-s', '-m', '5', '-w', '\n%{http_code}'];
  if (options.method !== undefined) args.push('-X', options.method);
  if (options.body !== undefined) args.push('--data-binary', '@-');
  const r = await host.exec('curl', [...args, url], { timeoutMs: 10_000, ...(options.body === undefined ? {} : { input: options.body }) });
  const cut = r.stdout.lastIndexOf('\n');
  return { status: Number(r.stdout.slice(cut + 1)), body: r.stdout.slice(0, cut) };
}

/** `meshctl ARGS` in the root namespace. */
export async function meshctl(args: string[], input?: string): Promise<string> {
  const r = await runChecked(process.execPath, [dist('controlplane', 'cli', 'main.js'), ...args], 'MESH_E_PROCESS_START', {
    env: childEnv(),
    timeoutMs: 30_000,
    ...(input === undefined ? {} : { input }),
  });
  return r.stdout;
}

export interface NetnsPeers {
  readonly consulAddr: string;
  readonly cp: ControlPlaneProcess;
  readonly cpDir: string;
  /** The trust bundle (meshctl ca bundle), for `mesh-agent join --ca-bundle`. */
  readonly bundleFile: string;
}

/**
 * Consul and the control plane on `host`'s address, their files under `base`; `keep` records each child for the test's teardown.
 * `consulDnsPort`: Consul's DNS interface on that port of the address (default: off).
 * `controlplaneArgs`: more arguments of `mesh-controlplane run` (e.g. --config FILE).
 */
export async function startNetnsPeers(
  host: TestHost,
  base: string,
  trustDomain: string,
  keep: (c: ManagedChild) => ManagedChild,
  options: { consulDnsPort?: number; controlplaneArgs?: readonly string[] } = {},
): Promise<NetnsPeers> {
  const { consul } = await tools();
  const consulDir = path.join(base, 'consul');
  await mkdir(consulDir);
  const consulConfig = path.join(consulDir, 'config.json');
  const config = consulDevConfig({
    nodeName: 'netns-consul',
    dataDir: path.join(consulDir, 'data'),
    address: host.address,
    ports: CONSUL_PORTS,
  });
  if (options.consulDnsPort !== undefined) (config.ports as Record<string, number>).dns = options.consulDnsPort;
  await writeFile(consulConfig, JSON.stringify(config));
  const consulChild = keep(host.spawn(consul.path, ['agent', '-dev', `-config-file=${consulConfig}`]));
  const consulAddr = `${host.address}:${CONSUL_PORTS.http}`;
  await waitFor(
    async () => {
      if (consulChild.exited()) throw new Error(`consul exited:\n${consulChild.output().slice(-2000)}`);
      const r = await httpIn(host, `http://${consulAddr}/v1/status/leader`);
      return r.status === 200 && r.body !== '""' ? true : undefined;
    },
    { timeoutMs: 60_000, what: `consul on ${host.name} to elect a leader` },
  );
  const cpDir = path.join(base, 'controlplane');
  await mkdir(cpDir);
  const cp = await spawnControlPlane(cpDir, trustDomain, CP_PORT, options.controlplaneArgs ?? [], {
    host: host.address,
    start: host.spawn,
  });
  keep(cp.child);
  const bundleFile = path.join(base, 'ca-bundle.pem');
  await writeFile(bundleFile, await meshctl(['ca', 'bundle', '--data-dir', cpDir]));
  return { consulAddr, cp, cpDir, bundleFile };
}
