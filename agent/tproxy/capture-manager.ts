/**
 * Traffic capture in the running agent (transparentProxy.enabled): installs
 * our iptables rules once Envoy is ready, checks them every checkInterval and
 * repairs drift, follows the failure policy when Envoy is dead or not ready
 * (capture-plan.ts decides), rebuilds them when the workloads change, and
 * removes exactly ours on stop.
 *
 * Record before make: start() records the removal in the agent's journal
 * before it touches anything, so a stop at any moment (during start, during an
 * install) removes whatever of ours is in the tables. Every iptables
 * operation runs one at a time on one chain; stop() waits for the one under
 * way, then removes.
 */
import type { Clock, TimerHandle } from '../../lib/clock.js';
import { toMeshError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import type { SideEffects } from '../../lib/side-effects.js';
import type { TransparentProxyConfig } from '../config/schema.js';
import type { Workload } from '../workloads/workload.js';
import { LIFT_AFTER_MS, type PlanAction, planCapture } from './capture-plan.js';
import type { CaptureState, CaptureStatus } from './capture-status.js';
import type { CaptureFacts, IptablesBackend, RuleSet } from './rules.js';

/** What a check of the tables found against the expected rule set. */
export interface RulesInspection {
  /** Expected rules (both families counted). */
  readonly expected: number;
  /** Rules of ours installed (our chains' rules and our commented jumps). */
  readonly installed: number;
  /** Expected rules not installed, and installed rules of ours not expected (rendered lines). */
  readonly missing: readonly string[];
  readonly unexpected: readonly string[];
}

/** The rules helper's API, bound to one runner (capture-rules.ts binds the real one). */
export interface CaptureRules {
  readonly backend: IptablesBackend;
  /** The host facts the rules depend on, for these workloads (resolveCaptureFacts). */
  facts(workloads: readonly Workload[]): Promise<CaptureFacts>;
  build(facts: CaptureFacts): RuleSet;
  /** Installs the set, replacing any rules of ours (stale or outdated) in the same per-table transaction. */
  install(set: RuleSet): Promise<void>;
  inspect(set: RuleSet): Promise<RulesInspection>;
  /** Removes every rule and chain of ours, and nothing else; a no-op when none is there. */
  remove(): Promise<void>;
}

/** Whether Envoy can take captured traffic now, and a call when that may have changed. */
export interface EnvoyReadiness {
  ready(): boolean;
  onChange(listener: () => void): () => void;
}

/** The split DNS proxy (the dns helper's startDnsProxy), started before the rules and stopped after them. */
export interface DnsProxyHandle {
  stop(): Promise<void>;
}

export interface CaptureManagerOptions {
  config: TransparentProxyConfig;
  rules: CaptureRules;
  envoy: EnvoyReadiness;
  clock: Clock;
  log: Logger;
  /** Started when config.dns.capture (before the rules are installed). */
  startDns?: () => Promise<DnsProxyHandle>;
  liftAfterMs?: number;
}

export interface CaptureManager {
  /** Records the removal in the journal, starts the DNS proxy, finds stale rules; installs once Envoy is ready. */
  start(journal: SideEffects): Promise<void>;
  /** New workloads: the facts (inbound ports, excluded uids) are resolved again and the rules rebuilt. */
  setWorkloads(workloads: readonly Workload[]): void;
  status(): CaptureStatus;
  /** Resolves when no iptables operation is under way or queued (tests). */
  settled(): Promise<void>;
  /** Removes our rules (after the operation under way), then stops the DNS proxy. Idempotent. */
  stop(): Promise<void>;
}

export function createCaptureManager(options: CaptureManagerOptions): CaptureManager {
  const { config, rules, envoy, clock, log } = options;
  const liftAfterMs = options.liftAfterMs ?? LIFT_AFTER_MS;
  let workloads: readonly Workload[] = [];
  let facts: CaptureFacts | undefined;
  let expected: RuleSet | undefined;
  /** The set our rules in the tables were built from; undefined when none of ours is in (or stale of unknown origin). */
  let installedSet: RuleSet | undefined;
  let rulesIn = false;
  let started = false;
  let stopped = false;
  let wasReady = false;
  let notReadySince: number | undefined;
  let lifted = false;
  let factsWanted = true;
  let repairs = 0;
  let inspection: RulesInspection | undefined;
  let lastCheckAt: number | undefined;
  let error: { code: string; message: string } | undefined;
  let warning: string | undefined;
  let removedOnStop = false;
  let chain: Promise<void> = Promise.resolve();
  let queued = false;
  let checkTimer: TimerHandle | undefined;
  let waitTimer: TimerHandle | undefined;
  let offEnvoy: (() => void) | undefined;
  let dns: DnsProxyHandle | undefined;
  let stopping: Promise<void> | undefined;

  /** Runs op after the operations before it; a failure is kept for status and logged, never thrown. */
  const enqueue = (what: string, op: () => Promise<void>): Promise<void> => {
    chain = chain.then(async () => {
      try {
        await op();
      } catch (err) {
        const e = toMeshError(err, 'MESH_E_TPROXY_IPTABLES');
        error = { code: e.code, message: e.message };
        log.error(`capture: ${what} failed`, { code: e.code, error: e.message });
      }
    });
    return chain;
  };

  const ensureFacts = async () => {
    if (!factsWanted && expected !== undefined) return;
    factsWanted = false;
    facts = await rules.facts(workloads);
    expected = rules.build(facts);
  };

  const sameSet = (a: RuleSet | undefined, b: RuleSet | undefined) =>
    a !== undefined && b !== undefined && JSON.stringify(a) === JSON.stringify(b);

  const perform = async (action: PlanAction) => {
    if (action.kind === 'install') {
      await ensureFacts();
      const set = expected as RuleSet;
      if (rulesIn && installedSet === undefined) log.info('capture: replacing the rules of an earlier run in one transaction', {});
      else if (action.why === 'outdated') log.info('capture: the workloads changed; reinstalling the rules', {});
      // Recorded before made: from here on, stop removes (the journal's undo is stop()).
      rulesIn = true;
      await rules.install(set);
      installedSet = set;
      error = undefined;
      if (lifted) log.warn('capture: Envoy is ready again; capture restored', { failurePolicy: config.failurePolicy });
      lifted = false;
      log.info('capture: rules installed', { backend: rules.backend, rules: countRules(set), inboundPorts: facts?.inboundPorts });
      await check(false);
    } else if (action.kind === 'lift' || action.kind === 'remove-stale') {
      await rules.remove();
      rulesIn = false;
      installedSet = undefined;
      inspection = undefined;
      if (action.kind === 'lift') {
        lifted = true;
        log.warn('CAPTURE LIFTED: Envoy is not ready and failurePolicy is open; traffic flows directly, NOT through the mesh', {
          code: 'MESH_E_TPROXY_LIFTED',
        });
      } else log.warn('capture: removed rules of an earlier run; failurePolicy open and Envoy not ready yet', {});
    } else if (action.kind === 'wait') {
      waitTimer?.cancel();
      waitTimer = clock.setTimer(Math.max(0, action.untilMs - clock.now()), () => reconcile());
    }
  };

  /** Asks the plan what to do and does it; coalesced: at most one pass queued. */
  const reconcile = () => {
    if (!started || stopped || queued) return;
    queued = true;
    void enqueue('reconcile', async () => {
      queued = false;
      if (stopped) return;
      const action = planCapture({
        envoyReady: envoy.ready(),
        notReadySince,
        wasReady,
        rulesIn,
        rulesCurrent: await currentSet(),
        policy: config.failurePolicy,
        now: clock.now(),
        liftAfterMs,
      });
      await perform(action);
    });
  };

  /** Whether the rules in are the ones the current facts give (re-resolved after a workload change). */
  const currentSet = async () => {
    if (!rulesIn || installedSet === undefined) return false;
    if (factsWanted) await ensureFacts();
    return sameSet(installedSet, expected);
  };

  /** Compares the tables with the expected set; repairs drift when asked. */
  const check = async (repair: boolean) => {
    if (!rulesIn || installedSet === undefined || stopped) return;
    const found = await rules.inspect(installedSet);
    inspection = found;
    lastCheckAt = clock.now();
    error = undefined;
    const drift = found.missing.length + found.unexpected.length > 0;
    if (!drift || !repair) return;
    log.warn('capture: the installed rules drifted from the expected ones; repairing', {
      missing: found.missing,
      unexpected: found.unexpected,
    });
    await rules.install(installedSet);
    repairs += 1;
    inspection = await rules.inspect(installedSet);
    lastCheckAt = clock.now();
  };

  const scheduleCheck = () => {
    checkTimer = clock.setTimer(config.checkInterval, () => {
      if (stopped) return;
      void enqueue('check', () => check(true)).then(() => {
        reconcile();
        scheduleCheck();
      });
    });
  };

  const onEnvoy = () => {
    const ready = envoy.ready();
    if (ready) {
      wasReady = true;
      notReadySince = undefined;
    } else if (notReadySince === undefined && wasReady) {
      notReadySince = clock.now();
      if (rulesIn && config.failurePolicy === 'closed')
        log.warn('capture: Envoy is not ready; capture kept (failurePolicy closed): captured traffic fails until Envoy is back', {});
    }
    reconcile();
  };

  const state = (): CaptureState => {
    if (removedOnStop) return 'removed';
    if (error !== undefined) return 'failed';
    if (lifted) return 'lifted';
    if (!rulesIn || installedSet === undefined) return 'pending';
    if (inspection !== undefined && inspection.missing.length + inspection.unexpected.length > 0) return 'drift';
    return 'installed';
  };

  const manager: CaptureManager = {
    async start(journal) {
      journal.check('traffic capture');
      if (config.dns.capture && options.startDns !== undefined) {
        const startDns = options.startDns;
        dns = await journal.effect(
          'DNS proxy',
          async () => stopOnce(await startDns()),
          (h) => h.stop(),
        );
      }
      // Before anything touches the tables: a stop from here on removes ours (stop() waits for an install under way).
      journal.record('traffic capture rules', () => manager.stop());
      started = true;
      offEnvoy = envoy.onChange(onEnvoy);
      await enqueue('looking for rules of an earlier run', async () => {
        await ensureFacts();
        const found = await rules.inspect(expected as RuleSet);
        if (found.installed > 0) {
          rulesIn = true;
          warning = `found ${found.installed} rules of an earlier run; they are replaced once Envoy is ready`;
          log.warn('capture: found rules of an earlier run (crash?)', { installed: found.installed, failurePolicy: config.failurePolicy });
        }
      });
      onEnvoy();
      scheduleCheck();
    },
    setWorkloads(next) {
      workloads = next;
      factsWanted = true;
      reconcile();
    },
    status() {
      const s = state();
      const lines = inspection ?? {
        expected: expected === undefined ? 0 : countRules(expected),
        // Between a (transactional) install and its first inspection: what was just written.
        installed: installedSet === undefined ? 0 : countRules(installedSet),
        missing: [],
        unexpected: [],
      };
      const loud =
        s === 'lifted'
          ? 'capture LIFTED: Envoy is not ready and failurePolicy is open; traffic bypasses the mesh'
          : s === 'pending'
            ? warning
            : undefined;
      return {
        state: s,
        backend: rules.backend,
        ipv6: facts?.ipv6 ?? false,
        failurePolicy: config.failurePolicy,
        rules: { expected: lines.expected, installed: lines.installed },
        drift: { missing: lines.missing, unexpected: lines.unexpected },
        inboundPorts: facts?.inboundPorts ?? [],
        ...(lastCheckAt === undefined ? {} : { lastCheckAt }),
        repairs,
        ...(loud === undefined ? {} : { warning: loud }),
        ...(error === undefined ? {} : { error }),
      };
    },
    async settled() {
      let seen: Promise<void> | undefined;
      while (seen !== chain) {
        seen = chain;
        await chain;
      }
    },
    stop() {
      stopping ??= (async () => {
        stopped = true;
        offEnvoy?.();
        checkTimer?.cancel();
        waitTimer?.cancel();
        await chain;
        try {
          await rules.remove();
          rulesIn = false;
          removedOnStop = true;
          error = undefined;
          log.info('capture: rules removed', {});
        } catch (err) {
          const e = toMeshError(err, 'MESH_E_TPROXY_IPTABLES');
          error = { code: e.code, message: e.message };
          throw e;
        }
        // The DNS proxy is the journal's own entry (stopped after this one); a stop() called outside the journal stops it too.
        await dns?.stop();
        dns = undefined;
      })();
      return stopping;
    },
  };
  return manager;
}

/** A handle whose stop() runs once, however often it is called (the journal and stop() both stop the DNS proxy). */
function stopOnce(handle: DnsProxyHandle): DnsProxyHandle {
  let stopping: Promise<void> | undefined;
  return { stop: () => (stopping ??= handle.stop()) };
}

/** Rules of a set as iptables counts them: a `both` rule is one per family. */
export function countRules(set: RuleSet): number {
  return set.rules.reduce((n, r) => n + (r.family === 'both' ? 2 : 1), 0);
}
