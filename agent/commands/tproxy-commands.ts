/**
 * mesh-agent tproxy plan | status | remove: the transparent proxy's rules on
 * the command line. plan needs no root and touches no iptables; status
 * compares the installed rules with the expected ones (exit 1 on drift);
 * remove deletes only our rules and chains (found by prefix and comment, so
 * it works with no config too).
 */
import { access } from 'node:fs/promises';
import { type CliIo, type Command, EXIT_FAILURE, EXIT_OK } from '../../lib/cli.js';
import { isMeshError, MeshError } from '../../lib/errors.js';
import { invalidConfigWarning, loadAgentConfig } from '../config/load.js';
import type { AgentConfig } from '../config/schema.js';
import { systemHostname } from '../run/host-facts.js';
import { inspectRules, removeRules, setFamilies } from '../tproxy/apply.js';
import { buildRuleSet } from '../tproxy/build.js';
import { resolveCaptureFacts } from '../tproxy/facts.js';
import { renderPlan } from '../tproxy/render.js';
import type { CaptureFacts, RuleSet } from '../tproxy/rules.js';
import { type BackendChoice, createIptablesRunner, detectBackend, hostRunnerOptions } from '../tproxy/runner-exec.js';
import { loadWorkloads } from '../workloads/load.js';

const DEFAULT_CONFIG = '/etc/mesh-agent/agent.yaml';
/** Workload ports do not depend on the trust domain; this one only lets a host that has not joined parse its files. */
const PLACEHOLDER_TRUST_DOMAIN = 'tproxy-plan.invalid';

interface Expected {
  readonly config: AgentConfig;
  readonly facts: CaptureFacts;
  readonly set: RuleSet;
}

function configFile(values: Record<string, unknown>): string {
  return typeof values.config === 'string' ? values.config : DEFAULT_CONFIG;
}

function agentUidFlag(values: Record<string, unknown>): number | undefined {
  if (values['agent-uid'] === undefined) return undefined;
  const text = String(values['agent-uid']);
  if (!/^\d+$/.test(text)) throw new MeshError('MESH_E_USAGE', `--agent-uid ${text}: must be a number`, { details: { flag: 'agent-uid' } });
  return Number(text);
}

/** The config, the host's facts and the rules the agent would install (an empty set when capture is off). */
async function expected(file: string, agentUid?: number): Promise<Expected> {
  const config = await loadAgentConfig(file, { hostname: systemHostname });
  const { workloads } = await loadWorkloads(config.workloadsDir, {
    trustDomain: config.trustDomain === '' ? PLACEHOLDER_TRUST_DOMAIN : config.trustDomain,
    inboundPortOffset: config.mesh.inboundPortOffset,
  });
  const host = agentUid === undefined ? {} : { uid: agentUid, gid: agentUid };
  const facts = await resolveCaptureFacts({ config, workloads, host });
  const set = config.transparentProxy.enabled ? buildRuleSet(config.transparentProxy, facts) : { chains: [], rules: [] };
  return { config, facts, set };
}

function backendFlag(values: Record<string, unknown>, fallback: BackendChoice): BackendChoice {
  const value = values.backend;
  if (value === undefined) return fallback;
  if (value === 'auto' || value === 'nft' || value === 'legacy') return value;
  throw new MeshError('MESH_E_USAGE', `--backend ${String(value)}: must be auto, nft or legacy`, { details: { flag: 'backend' } });
}

function writeJson(io: CliIo, value: unknown): void {
  io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

const CONFIG_OPTION = `  --config FILE     the agent configuration (default ${DEFAULT_CONFIG})\n`;
const JSON_OPTION = '  --json            print the result as JSON\n';

function planCommand(): Command {
  return {
    name: 'tproxy plan',
    summary: 'print the iptables rules the agent would install (no root needed, touches no iptables)',
    usage: `[--config FILE] [--agent-uid N] [--json]\n\nOptions:\n${CONFIG_OPTION}  --agent-uid N     plan as if the agent ran as uid N (default: yours; the agent usually runs as root, 0)\n${JSON_OPTION}`,
    options: { config: { type: 'string' }, 'agent-uid': { type: 'string' }, json: { type: 'boolean' } },
    async run({ values, io }) {
      const { config, facts, set } = await expected(configFile(values), agentUidFlag(values));
      const families = setFamilies(set);
      const plan = Object.fromEntries(families.map((f) => [f, renderPlan(set, f)]));
      if (values.json === true) {
        writeJson(io, {
          enabled: config.transparentProxy.enabled,
          backend: config.transparentProxy.backend,
          facts,
          plan,
          rules: set.rules,
        });
        return EXIT_OK;
      }
      if (!config.transparentProxy.enabled) {
        io.stdout.write('# transparentProxy.enabled is false: the agent installs no rules\n');
        return EXIT_OK;
      }
      for (const family of families) {
        io.stdout.write(`# ${family}: ${family === 'ipv6' ? 'ip6tables' : 'iptables'}-restore --noflush\n${plan[family]}`);
      }
      return EXIT_OK;
    },
  };
}

function statusCommand(): Command {
  return {
    name: 'tproxy status',
    summary: 'show the installed capture rules against the expected ones and the backend; exit 1 on drift',
    usage: `[--config FILE] [--backend auto|nft|legacy] [--json]\n\nOptions:\n${CONFIG_OPTION}  --backend B       the iptables backend (default: transparentProxy.backend)\n${JSON_OPTION}`,
    options: { config: { type: 'string' }, backend: { type: 'string' }, json: { type: 'boolean' } },
    async run({ values, io }) {
      const { config, set } = await expected(configFile(values));
      const options = await hostRunnerOptions();
      const backend = await detectBackend(backendFlag(values, config.transparentProxy.backend), options);
      const inspection = await inspectRules(createIptablesRunner(backend, options), set);
      const inSync = inspection.missing.length === 0 && inspection.unexpected.length === 0;
      if (values.json === true) {
        writeJson(io, { enabled: config.transparentProxy.enabled, backend, families: setFamilies(set), inSync, ...inspection });
      } else {
        const lines = [
          `capture   ${config.transparentProxy.enabled ? 'enabled' : 'disabled'}`,
          `backend   ${backend}`,
          `families  ${setFamilies(set).join(', ') || '-'}`,
          `rules     ${inspection.installed} installed, ${inspection.expected} expected`,
          `drift     ${inSync ? 'none' : `${inspection.missing.length} missing, ${inspection.unexpected.length} unexpected`}`,
          ...inspection.missing.map((l) => `  missing     ${l}`),
          ...inspection.unexpected.map((l) => `  unexpected  ${l}`),
        ];
        io.stdout.write(`${lines.join('\n')}\n`);
      }
      return inSync ? EXIT_OK : EXIT_FAILURE;
    },
  };
}

/**
 * transparentProxy.backend of the file. An invalid file must not keep our rules in place (this runs as the
 * unit's ExecStopPost, also after an edit broke the file): it is said on stderr and the backend is detected.
 */
async function configuredBackend(file: string, stderr: { write(text: string): unknown }): Promise<BackendChoice> {
  try {
    return (await loadAgentConfig(file, { hostname: systemHostname })).transparentProxy.backend;
  } catch (err) {
    if (!isMeshError(err) || err.code !== 'MESH_E_CONFIG_INVALID') throw err;
    stderr.write(invalidConfigWarning(err, 'removing our rules with backend auto'));
    return 'auto';
  }
}

function removeCommand(): Command {
  return {
    name: 'tproxy remove',
    summary: 'remove every iptables rule and chain of the agent (and nothing else)',
    usage: `[--config FILE] [--backend auto|nft|legacy] [--json]\n\nOptions:\n${CONFIG_OPTION.replace('(default', '(optional: for transparentProxy.backend; default')}  --backend B       the iptables backend (default: transparentProxy.backend, else auto)\n${JSON_OPTION}`,
    options: { config: { type: 'string' }, backend: { type: 'string' }, json: { type: 'boolean' } },
    async run({ values, io }) {
      const file = configFile(values);
      const hasConfig =
        typeof values.config === 'string' ||
        (await access(file).then(
          () => true,
          () => false,
        ));
      const fallback = hasConfig ? await configuredBackend(file, io.stderr) : 'auto';
      const options = await hostRunnerOptions();
      const backend = await detectBackend(backendFlag(values, fallback), options);
      const { removed } = await removeRules(createIptablesRunner(backend, options));
      if (values.json === true) writeJson(io, { backend, removed });
      else
        io.stdout.write(
          removed === 0 ? `no rules of ours installed (backend ${backend})\n` : `removed ${removed} rules of ours (backend ${backend})\n`,
        );
      return EXIT_OK;
    },
  };
}

export function tproxyCommands(): Command[] {
  return [planCommand(), statusCommand(), removeCommand()];
}
