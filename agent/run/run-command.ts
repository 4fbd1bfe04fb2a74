/**
 * `mesh-agent run --config FILE`: loads the config, wires the real Consul
 * client, clock and checks into the agent, reloads on SIGHUP and deregisters
 * then exits 0 on SIGTERM (or SIGINT).
 */
import { type Command, EXIT_OK } from '../../lib/cli.js';
import { systemClock } from '../../lib/clock.js';
import { MeshError } from '../../lib/errors.js';
import { createLogger, type Logger } from '../../lib/logger.js';
import { loadAgentConfig } from '../config/load.js';
import type { AgentConfig } from '../config/schema.js';
import { createDataPlane, type DataPlane } from '../dataplane/data-plane.js';
import { createConsulHttpClient } from '../discovery/consul-http.js';
import { adsSocketPath, agentBootstrap, envoyBaseId, envoyDir } from '../envoy/agent-envoy.js';
import { createEnvoySupervisor } from '../envoy/supervisor.js';
import { createWorkloadIdentities } from '../identity/workload-identities.js';
import { runCheck } from '../workloads/health-check.js';
import { type Agent, createAgent } from './agent.js';
import { collectHostFacts, fallbackHostFacts, type HostFacts, type HostFactsSource, hostFacts, systemHostname } from './host-facts.js';

export interface RunCommandDeps {
  /** Host facts (systeminformation in a worker by default); read once, within hostFactsTimeout. */
  facts?: HostFactsSource;
  /** Process signals; tests pass an EventEmitter. */
  signals?: Pick<NodeJS.Process, 'on' | 'off'>;
}

export function runCommand(deps: RunCommandDeps = {}): Command {
  return {
    name: 'run',
    summary: 'run the agent: workloads in Consul, SVIDs, xDS and the supervised Envoy',
    usage: '--config FILE\n\nOptions:\n  --config FILE   agent configuration (YAML or JSON)\n',
    options: { config: { type: 'string' } },
    async run({ values, io }) {
      const file = values.config;
      if (typeof file !== 'string') throw new MeshError('MESH_E_USAGE', 'mesh-agent run: --config FILE is required');
      const config = await loadAgentConfig(file, { hostname: systemHostname });
      const log = createLogger({ level: config.log.level, format: config.log.format, sink: { write: (l) => io.stderr.write(`${l}\n`) } });
      const facts = await startupFacts(config, deps.facts ?? hostFacts, log);
      const agent = createRealAgent(config, facts, log);
      const signals = deps.signals ?? process;
      // The envoy.* part of the config file is read again; other changes need a restart.
      const reloadEnvoy = async () => {
        if (agent.dataPlane === undefined) return;
        let next: AgentConfig;
        try {
          next = await loadAgentConfig(file, { hostname: systemHostname });
        } catch (err) {
          log.error('SIGHUP: the configuration file is invalid; Envoy keeps running as it is', { error: err });
          return;
        }
        await agent.dataPlane.reloadEnvoy({ bootstrap: agentBootstrap(next), binary: next.envoy.binary });
      };
      try {
        await agent.start();
      } catch (err) {
        // Leave nothing behind: registrations, the status listener, the ADS socket, Envoy.
        await agent.stop().catch(() => undefined);
        throw err;
      }
      await new Promise<void>((resolve) => {
        const onHup = () => {
          log.info('SIGHUP: reloading workloads, and Envoy if its binary or bootstrap changed', {});
          void agent.reload();
          void reloadEnvoy();
        };
        const onTerm = (signal: string) => {
          log.info('shutting down', { signal });
          signals.off('SIGHUP', onHup);
          signals.off('SIGTERM', onTerm);
          signals.off('SIGINT', onTerm);
          void agent.stop().then(resolve, resolve);
        };
        signals.on('SIGHUP', onHup);
        signals.on('SIGTERM', onTerm);
        signals.on('SIGINT', onTerm);
      });
      return EXIT_OK;
    },
  };
}

/** The host facts, once: a failure stops the start unless advertiseAddress is configured (then they only name the OS). */
async function startupFacts(config: AgentConfig, source: HostFactsSource, log: Logger): Promise<HostFacts> {
  try {
    return await collectHostFacts({ source, timeoutMs: config.hostFactsTimeout, clock: systemClock });
  } catch (err) {
    if (config.advertiseAddress === undefined) throw err;
    log.warn('host facts unavailable; advertiseAddress is configured, so the agent goes on with what node:os knows', { error: err });
    return fallbackHostFacts();
  }
}

/** The agent with its real parts: Consul over HTTP, checks on this host, and the data plane when enabled. */
export function createRealAgent(config: AgentConfig, facts: HostFacts, log: Logger): Agent {
  const address = config.advertiseAddress ?? facts.address;
  const consul = createConsulHttpClient({
    mode: config.consul.mode,
    address: config.consul.address,
    token: config.consul.token,
    datacenter: config.consul.datacenter,
    nodeName: config.nodeName,
    nodeAddress: address,
    nodeMeta: { 'mesh-os': facts.os.replace(/[^A-Za-z0-9_. -]/g, '').slice(0, 128), 'mesh-hostname': facts.hostname.slice(0, 128) },
  });
  const dataPlane = config.dataPlane.enabled ? realDataPlane(config, log) : undefined;
  return createAgent({
    config,
    consul,
    clock: systemClock,
    log: log.child({ component: 'agent' }),
    address,
    checkRunner: runCheck,
    ...(dataPlane === undefined ? {} : { dataPlane }),
  });
}

/** The data plane with the real parts: SVIDs from the control plane, the ADS server, Envoy under supervision. */
function realDataPlane(config: AgentConfig, log: Logger): DataPlane {
  const identities = createWorkloadIdentities({
    dataDir: config.dataDir,
    clock: systemClock,
    log: log.child({ component: 'identity' }),
  });
  const envoy = createEnvoySupervisor({
    binary: config.envoy.binary,
    workDir: envoyDir(config.dataDir),
    bootstrap: agentBootstrap(config),
    baseId: envoyBaseId(config),
    concurrency: config.envoy.concurrency,
    logLevel: config.envoy.logLevel,
    drainTimeMs: config.envoy.drainTime,
    backoff: { initialMs: config.envoy.restartBackoffInitial, maxMs: config.envoy.restartBackoffMax },
    clock: systemClock,
    log: log.child({ component: 'envoy' }),
  });
  return createDataPlane({
    nodeName: config.nodeName,
    trustDomain: config.trustDomain,
    adsSocket: adsSocketPath(config.dataDir),
    ...(config.envoy.socketGid === undefined ? {} : { adsSocketGid: config.envoy.socketGid }),
    clock: systemClock,
    log: log.child({ component: 'dataplane' }),
    identities,
    envoy,
  });
}
