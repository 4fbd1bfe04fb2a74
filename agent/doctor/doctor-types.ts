/**
 * `mesh-agent doctor`: the shapes every check shares. A check is a small
 * function of the loaded configuration, what the running agent says about
 * itself (if it runs) and injected probes (the only I/O); it returns a level,
 * one line of detail and, unless it passed, one line saying what to do.
 */
import type { AgentConfig } from '../config/schema.js';
import type { StatusDocument } from '../status/status.js';
import type { Workload } from '../workloads/workload.js';
import type { DoctorProbes } from './probes.js';

export type Level = 'pass' | 'warn' | 'fail';

export interface Outcome {
  level: Level;
  /** One line: what was found. */
  detail: string;
  /** One line: what to do (warn and fail). */
  fix?: string;
  /** Figures a script may read (--json), e.g. seconds until expiry. */
  data?: Record<string, unknown>;
}

export interface CheckResult extends Outcome {
  id: string;
  title: string;
}

/** The running agent, as its status listener describes it; absent when nothing answers there. */
export interface RunningAgent {
  status: StatusDocument;
  pid?: number;
  envoyPid?: number;
}

export interface DoctorContext {
  configFile: string;
  config: AgentConfig;
  /** The workload files that parse (ports, service names); problems with them are `mesh-agent status`'s business. */
  workloads: readonly Workload[];
  agent: RunningAgent | undefined;
  probes: DoctorProbes;
  now(): number;
}

export interface Check {
  id: string;
  title: string;
  run(ctx: DoctorContext): Promise<Outcome>;
}

export const pass = (detail: string, data?: Record<string, unknown>): Outcome => ({ level: 'pass', detail, ...(data ? { data } : {}) });
export const warn = (detail: string, fix: string, data?: Record<string, unknown>): Outcome => ({
  level: 'warn',
  detail,
  fix,
  ...(data ? { data } : {}),
});
export const fail = (detail: string, fix: string, data?: Record<string, unknown>): Outcome => ({
  level: 'fail',
  detail,
  fix,
  ...(data ? { data } : {}),
});

/** Hours and minutes, for "expires in 23h 59m". */
export function humanDuration(ms: number): string {
  const abs = Math.abs(ms);
  const minutes = Math.floor(abs / 60_000);
  if (minutes < 1) return `${Math.floor(abs / 1000)}s`;
  const hours = Math.floor(minutes / 60);
  const days = Math.floor(hours / 24);
  if (days > 0) return `${days}d ${hours % 24}h`;
  return hours > 0 ? `${hours}h ${minutes % 60}m` : `${minutes}m`;
}

/**
 * The fix for a host without a (valid) node identity: join with a token, or, in
 * Kubernetes mode, nothing to join: the agent attests with the pod's token at start.
 */
export function enrollFix(config: Pick<AgentConfig, 'kubernetes'>, joinFix: string): string {
  if (config.kubernetes === undefined) return joinFix;
  return `in kubernetes mode there is no join: start the agent (mesh-agent run); it attests with the token in ${config.kubernetes.tokenFiles.join(', ')} (is the projected token mounted, is the pod allowed by kubernetes.attestation.allow?)`;
}
