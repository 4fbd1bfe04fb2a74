/**
 * Helpers for the agent's integration tests: an agent config + workloads
 * folder, and the real `mesh-agent run` as a child process (dist/, after the
 * build). A Consul that can be restarted on the same ports is
 * restartableConsul() in consul.ts.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { AGENT_NODE_FLAGS, agentEnvAssignments } from '../../agent/node-flags.js';
import { AGENT_BUNDLE } from '../../scripts/bundle-agent.js';
import { repoRoot } from '../../scripts/repo-root.js';
import { type ManagedChild, startChild } from './child.js';
import { freePorts } from './ports.js';
import { httpGet } from './wait.js';

export interface AgentFixture {
  readonly base: string;
  /** The agent's node name (given in `extra`, or vm-<6 characters of the folder name>). */
  readonly nodeName: string;
  readonly configFile: string;
  readonly workloadsDir: string;
  readonly dataDir: string;
  readonly statusAddr: string;
  writeWorkload(name: string, text: string): Promise<void>;
  remove(): Promise<void>;
}

/** A temp folder with agent.yaml (status on a free port, fast retries) and an empty workloads.d. */
export async function agentFixture(consulAddr: string, extra: Record<string, unknown> = {}): Promise<AgentFixture> {
  const base = await mkdtemp(path.join(os.tmpdir(), 'mesh-agent-it-'));
  const workloadsDir = path.join(base, 'workloads.d');
  const dataDir = path.join(base, 'data');
  await mkdir(workloadsDir);
  const [statusPort] = await freePorts(1);
  const statusAddr = `127.0.0.1:${statusPort}`;
  const { consul: consulExtra, ...rest } = extra as { consul?: Record<string, unknown> };
  const config: Record<string, unknown> = {
    nodeName: `vm-${path.basename(base).slice(-6).toLowerCase()}`,
    trustDomain: 'example.org',
    dataDir,
    workloadsDir,
    advertiseAddress: '127.0.0.1',
    consul: { address: consulAddr, retryInitial: '100ms', retryMax: '1s', syncInterval: '1s', watchWait: '10s', ...consulExtra },
    status: { listen: statusAddr },
    dataPlane: { enabled: false },
    ...rest,
  };
  const configFile = path.join(base, 'agent.json');
  await writeFile(configFile, JSON.stringify(config, null, 2));
  return {
    base,
    nodeName: String(config.nodeName),
    configFile,
    workloadsDir,
    dataDir,
    statusAddr,
    writeWorkload: (name, text) => writeFile(path.join(workloadsDir, name), text),
    remove: () => rm(base, { recursive: true, force: true }),
  };
}

/** GET /status of a running agent. */
/** GET /status (or `path`, such as /status/xds) of a running agent, parsed. */
export async function agentStatus<T = Record<string, unknown>>(statusAddr: string, path = '/status'): Promise<T> {
  const { status, body } = await httpGet(`http://${statusAddr}${path}`);
  if (status !== 200) throw new Error(`status: HTTP ${status}`);
  return JSON.parse(body) as T;
}

/** `node dist/agent/mesh-agent.js run --config FILE` (the bundle the package runs) as a child process (started by `start`: default startChild; a netns host's spawn). */
export function startAgentProcess(
  configFile: string,
  start: (command: string, args: readonly string[]) => ManagedChild = startChild,
): ManagedChild {
  const main = path.join(repoRoot(), AGENT_BUNDLE);
  if (!existsSync(main)) {
    throw new Error('dist/agent is not built; run `npm run build` (npm test does) first');
  }
  // As the #! line does: env NAME=value node FLAGS mesh-agent.js (env execs node: the child's pid is the agent's).
  return start('env', [...agentEnvAssignments(), process.execPath, ...AGENT_NODE_FLAGS, main, 'run', '--config', configFile]);
}
