/**
 * `mesh-agent run --config FILE`: loads the config, wires the real Consul
 * client, clock and checks into the agent, reloads on SIGHUP and deregisters
 * then exits 0 on SIGTERM (or SIGINT).
 */
import { networkInterfaces } from 'node:os';
import { type Command, EXIT_FAILURE, EXIT_OK } from '../../lib/cli.js';
import { systemClock } from '../../lib/clock.js';
import { isMeshError, MeshError } from '../../lib/errors.js';
import { createLogger, type Logger } from '../../lib/logger.js';
import { type ServiceNotifier, serviceNotifier, silentNotifier } from '../../lib/sd-notify.js';
import { configErrorFields, EXIT_CONFIG, isStartupConfigError, startupLogger } from '../../lib/startup-config-error.js';
import { packageVersion } from '../../lib/version.js';
import { loadAgentConfig } from '../config/load.js';
import type { AgentConfig } from '../config/schema.js';
import { createDataPlane, type DataPlane } from '../dataplane/data-plane.js';
import { createConsulHttpClient } from '../discovery/consul-http.js';
import {
  accessLogFile,
  adsSocketPath,
  agentBootstrap,
  envoyBaseId,
  envoyDir,
  inboundAccessLogPath,
  modelTracing,
} from '../envoy/agent-envoy.js';
import { nodeEnvoyFiles } from '../envoy/envoy-files.js';
import { envoyOwnedFiles } from '../envoy/envoy-owned-files.js';
import { setprivSpawn } from '../envoy/process-launcher.js';
import { createEnvoySupervisor } from '../envoy/supervisor.js';
import type { ControlPlaneLink } from '../identity/cp-connection.js';
import { kubernetesAttestation } from '../identity/kube-attest.js';
import { createWorkloadIdentities } from '../identity/workload-identities.js';
import { type CaptureInput, captureInputOf } from '../model/capture.js';
import type { ModelTracing } from '../model/proxy-model.js';
import { createCpPolicySource } from '../policy/cp-policy-source.js';
import type { PolicySource } from '../policy/policy-source.js';
import { type AgentMetrics, createAgentMetrics } from '../status/agent-metrics.js';
import { type CaptureManager, createCaptureManager } from '../tproxy/capture-manager.js';
import { realCaptureRules, startCaptureDns } from '../tproxy/capture-rules.js';
import { resolveCaptureFacts } from '../tproxy/facts.js';
import type { IptablesRunner } from '../tproxy/iptables-runner.js';
import { createIptablesRunner, detectBackend, hostRunnerOptions } from '../tproxy/runner-exec.js';
import { runCheck } from '../workloads/health-check.js';
import type { SnapshotCache } from '../xds/cache/snapshot-cache.js';
import { type Agent, createAgent } from './agent.js';
import { type ConfigFileStatus, createConfigReloader } from './config-reload.js';
import { STOP_SIGNALS, takeHeldSignal } from './early-signals.js';
import { type EnvoyLaunch, settlePrivileges } from './envoy-privileges.js';
import { collectHostFacts, fallbackHostFacts, type HostFacts, type HostFactsSource, hostFacts, systemHostname } from './host-facts.js';
import { announceReady, servingStatus } from './service-readiness.js';

export interface RunCommandDeps {
  /** Host facts (systeminformation in a child process by default); read once, within hostFactsTimeout. */
  facts?: HostFactsSource;
  /** Process signals; tests pass an EventEmitter. */
  signals?: Pick<NodeJS.Process, 'on' | 'off'>;
  /**
   * Called once `run` has stopped the agent, with its exit code. The real one
   * exits the process if something is still holding the event loop a second
   * later (a leak must not keep a stopped agent alive); tests pass a no-op.
   */
  exit?: (code: number) => void;
  /** systemd notifications (READY=1...); default: systemd-notify when $NOTIFY_SOCKET is set, read once at start. */
  notifier?: (log: Logger) => ServiceNotifier;
}

function exitSoon(code: number): void {
  setTimeout(() => process.exit(code), 1_000).unref();
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
      const signals = deps.signals ?? process;
      // Signal handling comes before the first side effect: a SIGTERM at any moment of
      // start-up stops the agent through the same path as one after it.
      let stopSignal: string | undefined;
      let requestStop: (signal: string) => void = () => {};
      const stopRequested = new Promise<string>((resolve) => {
        requestStop = resolve;
      });
      let log: Logger | undefined;
      let agent: Agent | undefined;
      let reloadConfig: (() => Promise<void>) | undefined;
      let notifier: ServiceNotifier = silentNotifier;
      const onTerm = (signal: string) => {
        if (stopSignal !== undefined) {
          log?.info('already shutting down', { signal });
          return;
        }
        stopSignal = signal;
        log?.info('shutting down', { signal });
        void notifier.stopping(`stopping (${signal})`);
        requestStop(signal);
      };
      const onHup = () => {
        if (agent === undefined || stopSignal !== undefined) return;
        log?.info('SIGHUP: reloading the configuration file and workloads, and Envoy if its binary or bootstrap changed', {});
        void agent.reload();
        void reloadConfig?.();
      };
      for (const signal of STOP_SIGNALS) signals.on(signal, onTerm);
      signals.on('SIGHUP', onHup);
      if (signals === process) {
        // A signal that arrived while the program was still loading (held by main.ts).
        const early = takeHeldSignal();
        if (early !== undefined) onTerm(early);
      }
      try {
        const load = (f: string) => loadAgentConfig(f, { hostname: systemHostname, requireTrustDomain: true });
        let config: AgentConfig;
        try {
          config = await load(file);
        } catch (err) {
          // Retrying cannot fix the file: exit 78 (EX_CONFIG), which the unit's RestartPreventExitStatus stops on.
          if (!isStartupConfigError(err)) throw err;
          startupLogger(io).error('cannot start: fix the configuration file', configErrorFields(file, err));
          io.stderr.write(`mesh-agent: ${err.code}: ${err.message}\n`);
          return EXIT_CONFIG;
        }
        const logger = createLogger({
          level: config.log.level,
          format: config.log.format,
          sink: { write: (l) => io.stderr.write(`${l}\n`) },
        });
        log = logger;
        notifier = (deps.notifier ?? ((l) => serviceNotifier({ notifySocket: process.env.NOTIFY_SOCKET, log: l })))(logger);
        // Before any side effect: capture without CAP_NET_ADMIN fails here (MESH_E_TPROXY_PRIVILEGE).
        const launch = config.dataPlane.enabled || config.transparentProxy.enabled ? await settlePrivileges(config, logger) : undefined;
        const facts = await startupFacts(config, deps.facts ?? hostFacts, logger);
        if (stopSignal !== undefined) {
          logger.info('stopped before start-up', { signal: stopSignal });
          return EXIT_OK;
        }
        const iptablesOptions = config.transparentProxy.enabled ? await hostRunnerOptions() : undefined;
        const iptables =
          iptablesOptions === undefined
            ? undefined
            : createIptablesRunner(await detectBackend(config.transparentProxy.backend, iptablesOptions), iptablesOptions);
        let configStatus: (() => ConfigFileStatus) | undefined;
        const running = createRealAgent(config, facts, logger, {
          ...(launch === undefined ? {} : { launch }),
          ...(iptables === undefined ? {} : { iptables }),
          configStatus: () => configStatus?.() ?? { file, state: 'loaded' },
        });
        agent = running;
        // The file is read again on SIGHUP: Envoy's part is applied, other changes wait for a restart, a bad file is rejected.
        const reloader = createConfigReloader({
          file,
          initial: config,
          load,
          ...(running.dataPlane === undefined
            ? {}
            : {
                reloadEnvoy: (next: AgentConfig) =>
                  (running.dataPlane as DataPlane).reloadEnvoy({ bootstrap: agentBootstrap(next), binary: next.envoy.binary }),
              }),
          clock: systemClock,
          log: logger.child({ component: 'config' }),
        });
        configStatus = reloader.status;
        // RELOADING=1 / READY=1 only once READY=1 was first sent: a SIGHUP during start-up must not announce readiness.
        let announced = false;
        reloadConfig = async () => {
          if (!announced) {
            await reloader.reload();
            return;
          }
          await notifier.reloading('reloading the configuration');
          const outcome = await reloader.reload();
          await notifier.ready(servingStatus(running, outcome));
        };
        const started = running.start().then(
          () => undefined,
          (err: unknown) => err,
        );
        const first = await Promise.race([started.then((err) => ({ err })), stopRequested]);
        // A start-up error caused by a stop (a step cut short) is part of stopping, not a failure.
        if (
          typeof first === 'object' &&
          first.err !== undefined &&
          stopSignal === undefined &&
          !isMeshError(first.err, 'MESH_E_STOPPING')
        ) {
          // Start-up failed: leave nothing behind (registrations, the status listener, the ADS socket, Envoy).
          await running.stop().catch(() => undefined);
          (deps.exit ?? exitSoon)(EXIT_FAILURE);
          throw first.err;
        }
        // READY=1 once Envoy serves its first acknowledged snapshot: `systemctl start` returns then.
        if (typeof first === 'object' && first.err === undefined)
          announced = await announceReady(running, notifier, systemClock, stopRequested);
        await stopRequested;
        // Stops whatever start-up had made, also while it is still running.
        await running.stop();
        await started;
        (deps.exit ?? exitSoon)(EXIT_OK);
        return EXIT_OK;
      } finally {
        for (const signal of STOP_SIGNALS) signals.off(signal, onTerm);
        signals.off('SIGHUP', onHup);
      }
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

export interface RealAgentParts {
  snapshotCache?: SnapshotCache;
  policy?: PolicySource;
  /** Envoy's user and the setpriv arguments (settlePrivileges); default: Envoy runs as the agent's user, spawned directly. */
  launch?: EnvoyLaunch;
  /** The iptables runner of the detected backend; with transparentProxy.enabled and a data plane, the agent captures traffic. */
  iptables?: IptablesRunner;
  /** The configuration file's state, for status (run: loaded, or the latest reload rejected). */
  configStatus?: () => ConfigFileStatus;
}

/**
 * The agent with its real parts: Consul over HTTP, checks on this host, and the data plane when enabled.
 * `snapshotCache` replaces the data plane's own cache (a caller that composes a decorator around it);
 * `policy` replaces the policy source (tests that feed policy straight in).
 */
export function createRealAgent(config: AgentConfig, facts: HostFacts, log: Logger, parts: RealAgentParts = {}): Agent {
  const address = config.advertiseAddress ?? facts.address;
  const address6 = config.advertiseAddress6 === 'none' ? undefined : (config.advertiseAddress6 ?? facts.address6);
  const consul = createConsulHttpClient({
    mode: config.consul.mode,
    address: config.consul.address,
    token: config.consul.token,
    datacenter: config.consul.datacenter,
    nodeName: config.nodeName,
    nodeAddress: address,
    nodeMeta: { 'mesh-os': facts.os.replace(/[^A-Za-z0-9_. -]/g, '').slice(0, 128), 'mesh-hostname': facts.hostname.slice(0, 128) },
  });
  const metrics = createAgentMetrics({ clock: systemClock, processMetrics: true, version: packageVersion(), node: config.nodeName });
  const plane = config.dataPlane.enabled ? realDataPlane(config, log, parts, metrics) : undefined;
  const dataPlane = plane?.dataPlane;
  const capture =
    dataPlane !== undefined && parts.iptables !== undefined && config.transparentProxy.enabled
      ? realCapture(config, dataPlane, parts.iptables, log.child({ component: 'capture' }))
      : undefined;
  return createAgent({
    config,
    consul,
    clock: systemClock,
    log: log.child({ component: 'agent' }),
    address,
    ...(address6 === undefined ? {} : { address6 }),
    checkRunner: runCheck,
    ...(dataPlane === undefined ? {} : { dataPlane }),
    ...(capture === undefined ? {} : { capture }),
    ...(parts.configStatus === undefined ? {} : { configStatus: parts.configStatus }),
    metrics,
    ...(plane === undefined ? {} : { statusLink: plane.link }),
  });
}

/** Kubernetes mode: the node identity is attested with the pod's service-account token(s) instead of loaded from a join. */
function kubernetesIdentity(config: AgentConfig, log: Logger) {
  const { kubernetes, controlPlane } = config;
  if (kubernetes === undefined || controlPlane.address === undefined) return {};
  const attestation = kubernetesAttestation({
    dataDir: config.dataDir,
    address: controlPlane.address,
    trustDomain: config.trustDomain,
    caBundle: controlPlane.caBundle,
    tokenFiles: kubernetes.tokenFiles,
    log: log.child({ component: 'kube-attestation' }),
  });
  return { attestation };
}

/**
 * The data plane with the real parts: SVIDs from the control plane, the ADS server, Envoy under supervision;
 * and the control-plane connection its identities hold (status reports go over it).
 */
function realDataPlane(
  config: AgentConfig,
  log: Logger,
  parts: RealAgentParts,
  metrics: AgentMetrics,
): { dataPlane: DataPlane; link: ControlPlaneLink } {
  const cache = parts.snapshotCache;
  const identities = createWorkloadIdentities({
    dataDir: config.dataDir,
    ...(config.controlPlane.address === undefined ? {} : { address: config.controlPlane.address }),
    clock: systemClock,
    log: log.child({ component: 'identity' }),
    rotation: { onRenewalFailed: metrics.recordRenewalFailure },
    ...kubernetesIdentity(config, log),
  });
  const launch = parts.launch;
  const workDir = envoyDir(config.dataDir);
  const baseId = envoyBaseId(config);
  const runAs = launch?.runAs;
  const envoy = createEnvoySupervisor({
    binary: config.envoy.binary,
    workDir,
    ...(launch?.setpriv === undefined ? {} : { spawn: setprivSpawn(launch.setpriv) }),
    ...(runAs === undefined || launch === undefined
      ? {}
      : {
          files: envoyOwnedFiles(nodeEnvoyFiles(workDir, baseId), {
            dataDir: config.dataDir,
            workDir,
            runAs,
            agentUid: launch.agentUid,
            baseId,
            envoyWrites: [accessLogFile(config) ?? inboundAccessLogPath(config.dataDir)],
          }),
        }),
    bootstrap: agentBootstrap(config),
    baseId,
    concurrency: config.envoy.concurrency,
    logLevel: config.envoy.logLevel,
    drainTimeMs: config.envoy.drainTime,
    backoff: { initialMs: config.envoy.restartBackoffInitial, maxMs: config.envoy.restartBackoffMax },
    clock: systemClock,
    log: log.child({ component: 'envoy' }),
  });
  envoy.onEvent((event) => metrics.recordEnvoyEvent(event.kind));
  const dataPlane = createDataPlane({
    nodeName: config.nodeName,
    trustDomain: config.trustDomain,
    adsSocket: adsSocketPath(config.dataDir),
    ...adsSocketGid(config.envoy.socketGid ?? runAs?.gid),
    clock: systemClock,
    log: log.child({ component: 'dataplane' }),
    identities,
    envoy,
    ...(cache === undefined ? {} : { cache }),
    policy:
      parts.policy ??
      createCpPolicySource({
        link: identities.link(),
        dataDir: config.dataDir,
        clock: systemClock,
        log: log.child({ component: 'policy' }),
      }),
    ...dataPlaneTelemetry(config),
    ...(config.zone === '' ? {} : { zone: config.zone }),
    ...captureOption(config),
    metrics,
  });
  return { dataPlane, link: identities.link() };
}

/** Access logs and tracing (agent config accessLog and tracing) as the data plane takes them. */
function dataPlaneTelemetry(config: AgentConfig): { accessLogPath?: string; accessLogDefault?: boolean; tracing?: ModelTracing } {
  const file = accessLogFile(config);
  const tracing = modelTracing(config.tracing);
  return {
    ...(file === undefined ? {} : { accessLogPath: file }),
    ...(config.accessLog.enabled ? { accessLogDefault: true } : {}),
    ...(tracing === undefined ? {} : { tracing }),
  };
}

/** Traffic capture: the real rules over the runner, Envoy's readiness from the data plane, the DNS proxy when dns.capture. */
function realCapture(config: AgentConfig, dataPlane: DataPlane, iptables: IptablesRunner, log: Logger): CaptureManager {
  return createCaptureManager({
    config: config.transparentProxy,
    rules: realCaptureRules(config.transparentProxy, iptables, (workloads) =>
      // The same IPv6 decision as the capture listeners (captureOption), so rules and listeners agree.
      resolveCaptureFacts({ config, workloads, ipv6Available: async () => hostHasIpv6Loopback() }),
    ),
    envoy: {
      ready: () => dataPlane.captureReady?.() ?? false,
      onChange: (listener) => dataPlane.onEnvoyChange?.(listener) ?? (() => {}),
    },
    clock: systemClock,
    log,
    startDns: () => startCaptureDns(config, systemClock, log),
  });
}

/** The ADS socket's group: envoy.socketGid, else Envoy's own group when it runs as its own user. */
function adsSocketGid(gid: number | undefined): { adsSocketGid?: number } {
  return gid === undefined ? {} : { adsSocketGid: gid };
}

/**
 * The data plane's capture input when transparentProxy is enabled; ipv6 auto
 * means "the host has IPv6 loopback" (the capture listener binds [::1]).
 */
function captureOption(config: AgentConfig): { capture?: CaptureInput } {
  const tp = config.transparentProxy;
  const ipv6 = tp.ipv6 === 'on' || (tp.ipv6 === 'auto' && hostHasIpv6Loopback());
  const capture = captureInputOf(tp, ipv6);
  return capture === undefined ? {} : { capture };
}

/** ipv6 auto, for both the capture listeners and the rules: the host has IPv6 loopback (the listener binds [::1]). */
function hostHasIpv6Loopback(): boolean {
  return Object.values(networkInterfaces()).some((list) => list?.some((a) => a.family === 'IPv6' && a.internal));
}
