/**
 * A whole mesh node in the test process: a joined identity (real control
 * plane), workload files, and the agent exactly as `mesh-agent run` wires it
 * (real Consul client, SVIDs from the control plane, ADS server, Envoy under
 * the supervisor). Envoy's admin API is on a free port.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { type AgentConfig, agentConfigSchema } from '../../agent/config/schema.js';
import { joinMesh } from '../../agent/identity/enroll.js';
import type { PolicySource } from '../../agent/policy/policy-source.js';
import type { Agent } from '../../agent/run/agent.js';
import { createRealAgent } from '../../agent/run/run-command.js';
import type { SnapshotCache } from '../../agent/xds/cache/snapshot-cache.js';
import { validateConfig } from '../../lib/config-file.js';
import { deepFreeze } from '../../lib/deep-freeze.js';
import { createLogger } from '../../lib/logger.js';
import type { TestControlPlane } from './controlplane.js';
import { freePorts } from './ports.js';
import { tools } from './tools.js';
import { httpGet } from './wait.js';

export interface MeshNode {
  readonly agent: Agent;
  /** The agent's data folder (its Envoy folder is `<dataDir>/envoy`). */
  readonly dataDir: string;
  readonly logs: string[];
  admin(apiPath: string): Promise<string>;
  /** POST to Envoy's admin API (e.g. /reopen_logs); resolves with the body. */
  adminPost(apiPath: string): Promise<string>;
  /** Envoy's pid from the supervisor. */
  envoyPid(): number | undefined;
  stop(): Promise<void>;
}

export interface MeshNodeOptions {
  cp: TestControlPlane;
  consulAddr: string;
  nodeName: string;
  api?: 'sotw' | 'delta';
  /** file name -> content, written before the agent starts. */
  workloads: Record<string, string>;
  /** SPIFFE ID patterns the join token allows. */
  allow?: string[];
  envoy?: Record<string, unknown>;
  /** The data plane's snapshot cache (e.g. overridingCache from snapshot-edits.ts); default: its own. */
  snapshotCache?: SnapshotCache;
  /** Policy fed straight in (test/fakes/policy-source.ts); default: the agent's own source. */
  policy?: PolicySource;
  /**
   * A folder the caller keeps: the node joins only if it has not yet (a second
   * start is a restart of the same node, with its state), and stop() leaves it.
   */
  dir?: string;
  /** Agent config `zone` (Consul meta mesh_zone of its workloads, locality of its Envoy). */
  zone?: string;
  /** More top-level agent config keys (e.g. accessLog, tracing). */
  extraConfig?: Record<string, unknown>;
  /** false: no join (an agent in kubernetes mode attests with its token files instead); default true. */
  join?: boolean;
}

export async function startMeshNode(options: MeshNodeOptions): Promise<MeshNode> {
  const { envoy } = await tools();
  const dir = options.dir ?? (await mkdtemp(path.join(os.tmpdir(), 'mn-')));
  const dataDir = path.join(dir, 'data');
  const workloadsDir = path.join(dir, 'workloads.d');
  await mkdir(workloadsDir, { recursive: true });
  for (const [file, text] of Object.entries(options.workloads)) await writeFile(path.join(workloadsDir, file), text);
  const joined = options.dir !== undefined && existsSync(path.join(dataDir, 'identity'));
  if (!joined && options.join !== false)
    await joinMesh({
      address: options.cp.cp.address,
      token: options.cp.token(options.nodeName, options.allow ?? [`spiffe://${options.cp.trustDomain}/ns/*/sa/*`]),
      bundlePem: options.cp.bundlePem(),
      dataDir,
    });
  const [adminPort] = (await freePorts(1)) as [number];
  const parsed = validateConfig(
    agentConfigSchema(),
    {
      nodeName: options.nodeName,
      trustDomain: options.cp.trustDomain,
      dataDir,
      workloadsDir,
      advertiseAddress: '127.0.0.1',
      controlPlane: { address: options.cp.cp.address, caBundle: path.join(dataDir, 'identity', 'bundle.pem') },
      consul: {
        address: options.consulAddr,
        retryInitial: '100ms',
        retryMax: '1s',
        syncInterval: '1s',
        watchWait: '10s',
        coalesceWindow: '10ms',
      },
      envoy: {
        binary: envoy.path,
        adminPort,
        api: options.api ?? 'delta',
        concurrency: 1,
        drainTime: '1s',
        restartBackoffInitial: '200ms',
        restartBackoffMax: '2s',
        ...options.envoy,
      },
      status: { listen: '127.0.0.1:0' },
      log: { level: 'debug' },
      ...(options.zone === undefined ? {} : { zone: options.zone }),
      ...options.extraConfig,
    },
    'test',
  );
  const config = deepFreeze({ ...parsed, nodeName: options.nodeName, consul: { ...parsed.consul } }) as AgentConfig;
  const logs: string[] = [];
  const log = createLogger({ level: 'debug', sink: { write: (l) => logs.push(l) } });
  const facts = { hostname: options.nodeName, os: 'test', address: '127.0.0.1' };
  const agent = createRealAgent(config, facts, log, {
    ...(options.snapshotCache === undefined ? {} : { snapshotCache: options.snapshotCache }),
    ...(options.policy === undefined ? {} : { policy: options.policy }),
  });
  const adminUrl = `http://127.0.0.1:${adminPort}`;
  const admin = async (apiPath: string) => {
    const { status, body } = await httpGet(`${adminUrl}${apiPath}`);
    if (status !== 200) throw new Error(`envoy admin ${apiPath}: HTTP ${status}`);
    return body;
  };
  const adminPost = async (apiPath: string) => {
    const { status, body } = await httpGet(`${adminUrl}${apiPath}`, { method: 'POST' });
    if (status !== 200) throw new Error(`envoy admin POST ${apiPath}: HTTP ${status}`);
    return body;
  };
  let stopped = false;
  const node: MeshNode = {
    agent,
    dataDir,
    logs,
    admin,
    adminPost,
    envoyPid: () => agent.dataPlane?.status().envoy.pid as number | undefined,
    async stop() {
      if (stopped) return;
      stopped = true;
      await agent.stop().catch(() => undefined);
      if (options.dir === undefined) await rm(dir, { recursive: true, force: true });
    },
  };
  try {
    await agent.start();
  } catch (err) {
    await node.stop();
    throw new Error(`mesh node ${options.nodeName} did not start: ${(err as Error).message}\n${logs.slice(-30).join('\n')}`);
  }
  return node;
}
