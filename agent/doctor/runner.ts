/** Runs doctor's checks in order (one failing check never stops the others) and sums them up. */
import { toMeshError } from '../../lib/errors.js';
import { dataDirCheck, envoyBinaryCheck, iptablesCheck, portsCheck } from './checks-host.js';
import { clockSkewCheck, controlPlaneCheck, nodeSvidCheck } from './checks-identity.js';
import { captureDriftCheck, consulCheck, envoyAdminCheck } from './checks-live.js';
import type { Check, CheckResult, DoctorContext, Level } from './doctor-types.js';

export const ALL_CHECKS: readonly Check[] = Object.freeze([
  envoyBinaryCheck,
  iptablesCheck,
  portsCheck,
  dataDirCheck,
  controlPlaneCheck,
  clockSkewCheck,
  nodeSvidCheck,
  consulCheck,
  envoyAdminCheck,
  captureDriftCheck,
]);

/** Exit codes of `mesh-agent doctor`: 0 nothing failed (warnings may be listed), 1 at least one check failed, 2 usage error. */
export const DOCTOR_EXIT = Object.freeze({ ok: 0, failed: 1, usage: 2 });

export interface DoctorReport {
  config: string;
  /** The agent's pid when its status listener answered. */
  agent: { running: boolean; pid?: number };
  ok: boolean;
  counts: Record<Level, number>;
  checks: CheckResult[];
}

export function summarize(config: string, agent: DoctorReport['agent'], checks: CheckResult[]): DoctorReport {
  const counts: Record<Level, number> = { pass: 0, warn: 0, fail: 0 };
  for (const c of checks) counts[c.level]++;
  return { config, agent, ok: counts.fail === 0, counts, checks };
}

export async function runChecks(ctx: DoctorContext, checks: readonly Check[] = ALL_CHECKS): Promise<DoctorReport> {
  const results: CheckResult[] = [];
  for (const check of checks) {
    try {
      results.push({ id: check.id, title: check.title, ...(await check.run(ctx)) });
    } catch (err) {
      const e = toMeshError(err);
      results.push({
        id: check.id,
        title: check.title,
        level: 'fail',
        detail: `the check itself failed: ${e.code}: ${e.message}`,
        fix: 'run mesh-agent doctor as root; if it persists, report it with this output',
      });
    }
  }
  const pid = ctx.agent?.pid;
  return summarize(ctx.configFile, { running: ctx.agent !== undefined, ...(pid === undefined ? {} : { pid }) }, results);
}

export const exitCodeOf = (report: DoctorReport) => (report.ok ? DOCTOR_EXIT.ok : DOCTOR_EXIT.failed);
