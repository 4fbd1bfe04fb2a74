/**
 * `mesh-agent doctor [--config FILE] [--json]`: preflight and live checks,
 * each pass, warn or fail with a one-line fix (agent/doctor/). Exit 0 when no
 * check failed, 1 when one did, 2 for usage errors.
 */
import type { Command } from '../../lib/cli.js';
import { systemClock } from '../../lib/clock.js';
import { toMeshError } from '../../lib/errors.js';
import { loadAgentConfig } from '../config/load.js';
import type { AgentConfig } from '../config/schema.js';
import type { DoctorContext, RunningAgent } from '../doctor/doctor-types.js';
import type { DoctorProbes } from '../doctor/probes.js';
import { realProbes } from '../doctor/probes-real.js';
import { renderReport } from '../doctor/render.js';
import { type DoctorReport, exitCodeOf, runChecks, summarize } from '../doctor/runner.js';
import { systemHostname } from '../run/host-facts.js';
import { loadWorkloads } from '../workloads/load.js';
import type { Workload } from '../workloads/workload.js';

const DEFAULT_CONFIG = '/etc/mesh-agent/agent.yaml';
/** Workload ports and names do not depend on the trust domain; this one lets a host that has not joined parse its files. */
const PLACEHOLDER_TRUST_DOMAIN = 'doctor.invalid';

export interface DoctorDeps {
  probes(input: { config: AgentConfig; workloads: readonly Workload[]; now: () => number }): DoctorProbes;
  now(): number;
}

const realDeps: DoctorDeps = { probes: realProbes, now: () => systemClock.now() };

async function workloadsOf(config: AgentConfig): Promise<readonly Workload[]> {
  try {
    const loaded = await loadWorkloads(config.workloadsDir, {
      trustDomain: config.trustDomain === '' ? PLACEHOLDER_TRUST_DOMAIN : config.trustDomain,
      inboundPortOffset: config.mesh.inboundPortOffset,
    });
    return loaded.workloads;
  } catch {
    return [];
  }
}

function runningAgent(status: RunningAgent['status'] | undefined): RunningAgent | undefined {
  if (status === undefined) return undefined;
  const envoyPid = status.envoy?.pid;
  return {
    status,
    ...(status.agent?.pid === undefined ? {} : { pid: status.agent.pid }),
    ...(typeof envoyPid === 'number' ? { envoyPid } : {}),
  };
}

export async function doctorReport(file: string, deps: DoctorDeps = realDeps): Promise<DoctorReport> {
  let config: AgentConfig;
  try {
    config = await loadAgentConfig(file, { hostname: systemHostname });
  } catch (err) {
    const e = toMeshError(err);
    return summarize(file, { running: false }, [
      {
        id: 'config',
        title: 'the agent configuration loads',
        level: 'fail',
        detail: `${e.code}: ${e.message}`,
        fix: `fix ${file} (mesh-agent config check --config ${file} names the field)`,
      },
    ]);
  }
  const workloads = await workloadsOf(config);
  const probes = deps.probes({ config, workloads, now: deps.now });
  const ctx: DoctorContext = {
    configFile: file,
    config,
    workloads,
    agent: runningAgent(await probes.agent.status(config.status.listen)),
    probes,
    now: deps.now,
  };
  return runChecks(ctx);
}

export function doctorCommand(deps: DoctorDeps = realDeps): Command {
  return {
    name: 'doctor',
    summary: 'check the host, the agent and what it depends on; each check pass, warn or fail with a fix (exit 1 on any fail)',
    usage:
      '[--config FILE] [--json]\n\nOptions:\n' +
      `  --config FILE   the agent configuration (default ${DEFAULT_CONFIG})\n` +
      '  --json          print every check as JSON: {config, agent, ok, counts, checks: [{id, title, level, detail, fix?, data?}]}\n\n' +
      'Exit codes: 0 no check failed (warnings may be listed), 1 at least one check failed, 2 usage error.\n',
    options: { config: { type: 'string' }, json: { type: 'boolean' } },
    async run({ values, io }) {
      const file = typeof values.config === 'string' ? values.config : DEFAULT_CONFIG;
      const report = await doctorReport(file, deps);
      io.stdout.write(values.json === true ? `${JSON.stringify(report, null, 2)}\n` : renderReport(report));
      return exitCodeOf(report);
    },
  };
}
