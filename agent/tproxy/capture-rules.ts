/**
 * The capture manager's rules (CaptureRules) bound to the real ones: facts
 * from resolveCaptureFacts, the set from buildRuleSet, and install, inspect
 * and removal through one IptablesRunner (the backend detected at start).
 * Also the DNS proxy the manager starts when transparentProxy.dns.capture.
 */
import type { Clock } from '../../lib/clock.js';
import type { Logger } from '../../lib/logger.js';
import type { AgentConfig, TransparentProxyConfig } from '../config/schema.js';
import type { Workload } from '../workloads/workload.js';
import { inspectRules, installRules, removeRules } from './apply.js';
import { buildRuleSet } from './build.js';
import type { CaptureRules, DnsProxyHandle } from './capture-manager.js';
import { startDnsProxy } from './dns-proxy.js';
import { hostHasIpv6 } from './facts.js';
import type { IptablesRunner } from './iptables-runner.js';
import type { CaptureFacts } from './rules.js';

export function realCaptureRules(
  config: TransparentProxyConfig,
  runner: IptablesRunner,
  /** The host facts for the workloads (resolveCaptureFacts; fixed ones in tests). */
  facts: (workloads: readonly Workload[]) => Promise<CaptureFacts>,
): CaptureRules {
  return {
    backend: runner.backend,
    facts,
    build: (f) => buildRuleSet(config, f),
    install: (set) => installRules(runner, set),
    inspect: (set) => inspectRules(runner, set),
    remove: async () => {
      await removeRules(runner);
    },
  };
}

/** Starts the split DNS proxy on transparentProxy.dns.port (127.0.0.1, and ::1 when the IPv6 rules are installed). */
export async function startCaptureDns(config: AgentConfig, clock: Clock, log: Logger): Promise<DnsProxyHandle> {
  const dns = config.transparentProxy.dns;
  const ipv6 = config.transparentProxy.ipv6 === 'on' || (config.transparentProxy.ipv6 === 'auto' && (await hostHasIpv6()));
  const proxy = await startDnsProxy({
    listenPort: dns.port,
    consulAddress: dns.consulAddress,
    domain: dns.domain,
    listenAddresses: ipv6 ? ['127.0.0.1', '::1'] : ['127.0.0.1'],
    clock,
    log,
  });
  return { stop: () => proxy.close() };
}
