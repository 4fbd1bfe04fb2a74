/**
 * What the supervisor shows of itself: the status (mesh-agent status, the
 * status endpoint) and the events it notifies. Status keeps the six states
 * operators know; the table's finer phases map onto them: a validation is
 * still `running` (the epoch serves on), a cold restart is `starting`.
 */
import type { EnvoyEventKind, ProcRef, SupervisorState } from './supervisor-state.js';

// A type alias (not an interface) so it fits `{ state: string; [key: string]: unknown }`.
export type EnvoyStatus = {
  state: 'stopped' | 'starting' | 'running' | 'backoff' | 'draining' | 'hot-restarting';
  pid?: number;
  epoch: number;
  /** Crash restarts. */
  restarts: number;
  /** From `envoy --version`, e.g. "1.40.0". */
  version?: string;
  /** host:port of the current epoch's admin API. */
  adminAddress?: string;
  lastExit?: { code: number | null; signal: string | null; at: number };
  nextRestartAt?: number;
};

export interface EnvoyEvent {
  kind: EnvoyEventKind;
  status: EnvoyStatus;
  detail?: string;
}

export function envoyStatus(s: SupervisorState): EnvoyStatus {
  let view: { state: EnvoyStatus['state']; proc?: ProcRef | undefined; adminAddress?: string | undefined; nextRestartAt?: number };
  if (s.phase === 'starting') view = { state: 'starting', proc: s.proc };
  else if (s.phase === 'running') view = { state: 'running', proc: s.proc, adminAddress: s.adminAddress };
  else if (s.phase === 'validating')
    view = s.procExit ? { state: 'running' } : { state: 'running', proc: s.proc, adminAddress: s.adminAddress };
  else if (s.phase === 'hot-restarting')
    view = s.parentExit ? { state: 'hot-restarting' } : { state: 'hot-restarting', proc: s.parent, adminAddress: s.parentAdmin };
  else if (s.phase === 'cold-restarting') view = { state: 'starting' };
  else if (s.phase === 'backoff') view = { state: 'backoff', nextRestartAt: s.nextRestartAt };
  else if (s.phase === 'draining') {
    const alive = s.procs.some((p) => p.id === s.current?.id);
    view = alive ? { state: 'draining', proc: s.current, adminAddress: s.adminAddress } : { state: 'draining' };
  } else view = { state: 'stopped' };
  return {
    state: view.state,
    ...(view.proc?.pid === undefined ? {} : { pid: view.proc.pid }),
    epoch: s.epoch,
    restarts: s.restarts,
    ...(s.version === undefined ? {} : { version: s.version }),
    ...(view.adminAddress === undefined ? {} : { adminAddress: view.adminAddress }),
    ...(s.lastExit === undefined ? {} : { lastExit: { ...s.lastExit } }),
    ...(view.nextRestartAt === undefined ? {} : { nextRestartAt: view.nextRestartAt }),
  };
}
