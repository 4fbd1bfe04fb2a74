/**
 * Shutdown at any moment of start-up, against the real control plane, Consul
 * and Envoy: the real `mesh-agent run` process gets SIGTERM (or SIGINT) at 20
 * points spread over the first 3 s after its signal handling is installed, and
 * right after each start-up milestone it logs. Every time: it exits 0 (its
 * time is printed), Consul holds no service of its node, no Envoy of its data
 * folder is left, and the ADS socket is gone. Then: Envoy that keeps failing
 * to start, followed by SIGTERM; and Consul down during start-up, back on the
 * same ports (the agent registers its workloads in it), then SIGTERM.
 *
 * The moment of each signal is the test's input; nothing waits for time to
 * pass in order to synchronize. The start of the clock is observed from
 * outside: the agent's first line of JavaScript installs its SIGHUP handler,
 * which shows in /proc/<pid>/status (SigCgt).
 */
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t, { type Test } from 'tap';
import { leftoversOf, servicesOfNode } from '../support/agent-leftovers.js';
import { type AgentFixture, startAgentProcess } from '../support/agent-process.js';
import type { ManagedChild } from '../support/child.js';
import { restartableConsul } from '../support/consul.js';
import { type JoinSource, joinSource, startTestControlPlane } from '../support/controlplane.js';
import { meshHost, startMeshPeers, startWebApi } from '../support/mesh-world.js';
import { tempDir } from '../support/temp-dir.js';
import { waitFor } from '../support/wait.js';

t.setTimeout(600_000);

const TD = 'example.org';
const DRAIN_MS = 3_000;
/** Process exit after the agent stopped everything (Node tearing down). */
const EXIT_GRACE_MS = 1_500;
/**
 * Only a hang fails: an agent signalled while Node is still loading it exits once it has
 * loaded, which took over 11 s at a load average of 16 on the 2 cores. Speed is measured
 * by bench/agent-restart.ts.
 */
const HANG_MS = 60_000;

/** True once the process catches SIGHUP: the agent's signal handling is installed (Node alone does not catch it). */
async function signalHandlingInstalled(pid: number): Promise<boolean> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const mask = /^SigCgt:\s*([0-9a-f]+)$/m.exec(status)?.[1];
  return mask !== undefined && (BigInt(`0x${mask}`) & 1n) === 1n;
}

interface Host {
  fx: AgentFixture;
  nodeName: string;
  /** The workloads' names (web and api). */
  workloads: string[];
  services: () => Promise<Record<string, { Meta?: Record<string, string> }>>;
}

type Trigger = (agent: ManagedChild) => Promise<void>;

const after =
  (ms: number): Trigger =>
  () =>
    new Promise((resolve) => setTimeout(resolve, ms));

const afterLog =
  (msg: string): Trigger =>
  (agent) =>
    waitFor(async () => (agent.output().includes(`"msg":"${msg}"`) ? true : undefined), {
      timeoutMs: 30_000,
      intervalMs: 5,
      what: `the agent to log "${msg}"`,
      fatal: () => (agent.exited() ? `the agent exited: ${agent.output().slice(-2000)}` : undefined),
    }).then(() => undefined);

/** Starts the agent, signals it at the trigger, and checks it exits 0 leaving nothing behind. */
async function stopAt(t: Test, host: Host, label: string, signal: NodeJS.Signals, trigger: Trigger): Promise<void> {
  const agent = startAgentProcess(host.fx.configFile);
  const exit = new Promise<{ code: number | null; signal: string | null; at: number }>((resolve) =>
    agent.process.once('exit', (code, sig) => resolve({ code, signal: sig, at: performance.now() })),
  );
  try {
    await waitFor(async () => ((await signalHandlingInstalled(agent.pid)) ? true : undefined), {
      timeoutMs: 30_000,
      intervalMs: 2,
      what: 'the agent to install its signal handling',
      fatal: () => (agent.exited() ? `the agent exited: ${agent.output().slice(-2000)}` : undefined),
    });
    await trigger(agent);
    t.notOk(agent.exited(), `${label}: the agent was running when signalled`);
    const before = agent.output();
    const sentAt = performance.now();
    agent.process.kill(signal);
    let timer: NodeJS.Timeout | undefined;
    const result = await Promise.race([
      exit,
      new Promise<undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), HANG_MS);
      }),
    ]).finally(() => clearTimeout(timer));
    if (result === undefined) {
      t.fail(`${label}: the agent did not exit within ${HANG_MS} ms of ${signal} (a hang)\n${agent.output().slice(-3000)}`);
      return;
    }
    const took = Math.round(result.at - sentAt);
    const phase = [...before.matchAll(/"msg":"([^"]+)"/g)].map((m) => m[1]);
    // How long it took is information (bench/agent-restart.ts measures it); the deadline above only ends a hang.
    t.comment(
      `${label}: ${signal} after "${phase.at(-1) ?? '(nothing logged yet)'}", exit ${result.code ?? result.signal} in ${took} ms (drain ${DRAIN_MS} ms + ${EXIT_GRACE_MS} ms grace)`,
    );
    t.equal(result.code, 0, `${label}: exit 0${result.code === 0 ? '' : `\n${agent.output().slice(-3000)}`}`);
    const left = await leftoversOf(host.fx.dataDir, host.nodeName, host.services);
    t.same(left.services, [], `${label}: Consul holds no service of the node`);
    t.same(left.envoyPids, [], `${label}: no Envoy of this agent is left`);
    t.notOk(left.adsSocket, `${label}: the ADS socket is gone`);
    t.same(left.envoyFiles, [], `${label}: no bootstrap or admin-address file of Envoy is left`);
  } finally {
    if (!agent.exited()) await agent.stop(1_000);
  }
}

/** A host with web and api, joined to the control plane; the agent takes the trust domain from the join. */
async function makeHost(
  t: Test,
  join: JoinSource,
  consulAddr: string,
  services: Host['services'],
  envoyOverrides: Record<string, unknown> = {},
): Promise<Host> {
  const apps = await startWebApi(t);
  const { fx, nodeName } = await meshHost(t, {
    join,
    consulAddr,
    config: { trustDomain: undefined },
    envoy: { drainTime: `${DRAIN_MS}ms`, ...envoyOverrides },
    workloads: apps.files(),
  });
  return { fx, nodeName, workloads: ['api', 'web'], services };
}

t.test('SIGTERM or SIGINT at any moment of start-up leaves nothing behind', async (t) => {
  const { join, consul } = await startMeshPeers(t, { trustDomain: TD });
  const host = await makeHost(t, join, consul.httpAddr, () => consul.api('/v1/agent/services'));

  // 20 points over the first 3 s after signal handling is installed; every fifth is SIGINT.
  for (let i = 0; i < 20; i++) {
    const ms = i * 150;
    await stopAt(t, host, `at ${ms} ms`, i % 5 === 4 ? 'SIGINT' : 'SIGTERM', after(ms));
  }
  // Right after each start-up milestone. The SVIDs are on disk after the first run; for the milestone
  // of fetching one, they are removed first.
  for (const milestone of [
    'xds server listening',
    'node identity loaded',
    'workload SVID loaded from disk',
    'registered',
    'workload SVID obtained',
    'xds snapshot served',
    'Envoy started',
    'xds stream opened',
    'mesh-agent running',
  ]) {
    if (milestone === 'workload SVID obtained')
      await rm(path.join(host.fx.dataDir, 'identity', 'workloads'), { recursive: true, force: true });
    await stopAt(t, host, `after "${milestone}"`, 'SIGTERM', afterLog(milestone));
  }
});

t.test('Envoy that fails to start, then SIGTERM: exit 0, nothing left', async (t) => {
  const { join, consul } = await startMeshPeers(t, { trustDomain: TD });
  const failing = path.join(await tempDir(t, 'agent-shutdown-'), 'envoy-fails');
  await writeFile(failing, '#!/bin/sh\necho "envoy: cannot start (test binary)" >&2\nexit 1\n', { mode: 0o755 });
  const host = await makeHost(t, join, consul.httpAddr, () => consul.api('/v1/agent/services'), {
    binary: failing,
    restartBackoffInitial: '200ms',
    restartBackoffMax: '1s',
  });
  await stopAt(t, host, 'Envoy failing', 'SIGTERM', afterLog('Envoy exited unexpectedly; restarting after a backoff'));
});

t.test('Consul down during start-up, back on the same ports, then SIGTERM: registered, then exit 0, nothing left', async (t) => {
  const cp = await startTestControlPlane({ trustDomain: TD });
  t.teardown(() => cp.stop());
  const consul = await restartableConsul();
  t.teardown(() => consul.stop());
  const host = await makeHost(t, joinSource(cp), consul.httpAddr, () => consul.api('/v1/agent/services'));
  const registered: string[] = [];
  // The agent starts while nothing answers on Consul's ports; Consul then comes back on them.
  const consulBack: Trigger = async (agent) => {
    await afterLog('consul unreachable; retrying with backoff')(agent);
    await consul.start();
    registered.push(
      ...(await waitFor(
        async () => {
          const ids = await servicesOfNode(host.services, host.nodeName);
          return ids.length === host.workloads.length ? ids : undefined;
        },
        {
          timeoutMs: 30_000,
          what: `the agent to register ${host.workloads.join(' and ')} once Consul is back`,
          fatal: () => (agent.exited() ? `the agent exited: ${agent.output().slice(-2000)}` : undefined),
        },
      )),
    );
  };
  await stopAt(t, host, 'Consul down, then back', 'SIGTERM', consulBack);
  t.same(
    registered,
    host.workloads.map((w) => `${w}-${host.nodeName}`),
    'the workloads were registered in the real Consul once it was back (before SIGTERM)',
  );
});
