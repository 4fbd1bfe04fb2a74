/**
 * What a stopped agent may have left behind, looked up from the outside the
 * way an operator would: Envoy processes started for its data folder, its ADS
 * socket, and its services in Consul.
 */
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { adsSocketPath, envoyDir } from '../../agent/envoy/agent-envoy.js';
import { META } from '../../lib/consul-meta.js';

/** PIDs of live processes whose command line names a file in <dataDir>/envoy (Envoy's bootstrap). */
export async function envoyProcessesOf(dataDir: string): Promise<number[]> {
  const marker = `${envoyDir(dataDir)}${path.sep}`;
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    const args = cmdline.split('\0');
    // The agent itself has the config path, never a file inside <dataDir>/envoy.
    if (args.some((a) => a.startsWith(marker)) && !args.some((a) => a.endsWith('main.js'))) pids.push(Number(entry));
  }
  return pids;
}

export interface Leftovers {
  envoyPids: number[];
  adsSocket: boolean;
  /** Files left in <dataDir>/envoy (epochs' bootstraps and admin addresses). */
  envoyFiles: string[];
  /** Service IDs in Consul whose meta META.node (mesh_node) is this node. */
  services: string[];
}

type ConsulServices = () => Promise<Record<string, { Meta?: Record<string, string> }>>;

/** IDs of the services (Consul's /v1/agent/services) that an agent registered for nodeName (meta META.node). */
export async function servicesOfNode(consulServices: ConsulServices, nodeName: string): Promise<string[]> {
  return Object.entries(await consulServices())
    .filter(([, svc]) => svc.Meta?.[META.node] === nodeName)
    .map(([id]) => id)
    .sort();
}

export async function leftoversOf(dataDir: string, nodeName: string, consulServices: ConsulServices): Promise<Leftovers> {
  const services = await servicesOfNode(consulServices, nodeName);
  const envoyFiles = await readdir(envoyDir(dataDir)).catch(() => [] as string[]);
  return { envoyPids: await envoyProcessesOf(dataDir), adsSocket: existsSync(adsSocketPath(dataDir)), envoyFiles, services };
}
