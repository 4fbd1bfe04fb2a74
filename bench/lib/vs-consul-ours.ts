/**
 * Our side of bench/vs-consul, set up as bench/xds does: a real control plane
 * (in process), a joined data dir, and the real `mesh-agent run` (built dist)
 * with the data plane on and the provisioned Envoy at concurrency 1 (delta
 * xDS, the default), its workload `bench-caller` with the given upstreams.
 */
import { agentStatus, startAgentProcess } from '../../test/support/agent-process.js';
import type { ManagedChild } from '../../test/support/child.js';
import { joinSource, startTestControlPlane } from '../../test/support/controlplane.js';
import { meshHost } from '../../test/support/mesh-world.js';
import { freePorts } from '../../test/support/ports.js';
import { waitFor } from '../../test/support/wait.js';
import type { Track } from './vs-consul-peers.js';
import { TRUST_DOMAIN } from './xds-fixtures.js';

interface StatusDoc {
  healthy: boolean;
  problems: string[];
  envoy?: { state: string; pid?: number };
  xds?: { lastChange?: LastChange };
}

/** /status xds.lastChange as JSON: `at` is the view's arrival (ISO), the rest ms after it. */
export interface LastChange {
  readonly at: string;
  readonly startedMs?: number;
  readonly pushedMs?: number;
  readonly ackedMs?: number;
}

export interface Ours {
  readonly agent: ManagedChild;
  readonly adminUrl: string;
  /** When `mesh-agent run` was spawned, ms since the epoch. */
  readonly startedAt: number;
  /** Our Envoy's pid, from the agent's /status (undefined until it runs). */
  envoyPid(): Promise<number | undefined>;
  /** A reason to stop waiting (the agent exited), with its output. */
  fatal(): string | undefined;
  /** Waits until /status says healthy (after Envoy is ready). */
  healthy(): Promise<void>;
  /** /status xds.lastChange: the latest catalog view's way through the agent (agent/dataplane/change-timing.ts). */
  lastChange(): Promise<LastChange | undefined>;
  stop(): Promise<void>;
}

export async function startOurs(o: {
  consulAddr: string;
  envoyBinary: string;
  caller: string;
  upstreams: ReadonlyArray<{ service: string; localPort: number }>;
  track: Track;
}): Promise<Ours> {
  const cp = await startTestControlPlane({ trustDomain: TRUST_DOMAIN });
  o.track(() => cp.stop());
  const [appPort, meshPort, adminPort] = (await freePorts(3)) as [number, number, number];
  const { fx } = await meshHost(
    { teardown: (fn) => void o.track(async () => fn()) },
    {
      join: joinSource(cp),
      consulAddr: o.consulAddr,
      nodeName: 'bench-ours',
      allow: [`spiffe://${TRUST_DOMAIN}/ns/default/sa/${o.caller}`],
      // The Consul watch settings are the agent's defaults (agent/config/schema.ts), not the tests' fast loops: with
      // the tests' 10 s wait, 200 blocking queries time out and are answered again 20 times a second.
      config: {
        controlPlane: { address: cp.cp.address, caBundle: '/dev/null' },
        consul: { watchWait: '60s', syncInterval: '5s' },
      },
      envoy: { binary: o.envoyBinary, adminPort, api: 'delta', concurrency: 1 },
      workloads: {
        [`${o.caller}.json`]: JSON.stringify({ name: o.caller, port: appPort, meshPort, protocol: 'http', upstreams: o.upstreams }),
      },
    },
  );
  const startedAt = Date.now();
  const agent = startAgentProcess(fx.configFile);
  const stop = o.track(() => agent.stop());
  const status = () => agentStatus<StatusDoc>(fx.statusAddr);
  return {
    agent,
    startedAt,
    adminUrl: `http://127.0.0.1:${adminPort}`,
    async envoyPid() {
      const s = await status();
      return s.envoy?.state === 'running' ? s.envoy.pid : undefined;
    },
    fatal: () => (agent.exited() ? `the agent exited:\n${agent.output().slice(-4000)}` : undefined),
    async healthy() {
      await waitFor(async () => ((await status()).healthy ? true : undefined), { timeoutMs: 30_000, what: 'our agent healthy' });
    },
    // The xds section alone: the whole /status of 200 upstreams, read after every flip, made the agent build about 400 KB of garbage each time.
    lastChange: async () => (await agentStatus<StatusDoc>(fx.statusAddr, '/status/xds')).xds?.lastChange,
    stop,
  };
}
