/**
 * What a command in the docs needs running before it, and what it sets up
 * (pure). A doc in docs/ starts where the README's five-minute tour leaves
 * off: its commands may need the control plane, a joined host, the agent's
 * configuration or the running agent, and the test runs those steps of the
 * tour first, unless the doc does them itself.
 */
import { agentProgram } from '../../agent/program.js';
import { meshctlProgram } from '../../controlplane/cli/program.js';
import { controlplaneProgram } from '../../controlplane/program.js';
import type { Program } from '../../lib/cli.js';
import { resolveCommand } from '../../lib/cli-argv.js';
import { shellWords } from './doc-blocks.js';

export type Step = 'controlplane' | 'join' | 'agent-config' | 'agent';

/** The steps in the order the tour takes them. */
export const STEPS: readonly Step[] = ['controlplane', 'join', 'agent-config', 'agent'];

const DEPENDS: Record<Step, readonly Step[]> = {
  controlplane: [],
  join: ['controlplane'],
  'agent-config': [],
  agent: ['join', 'agent-config'],
};

/** The file that is the agent configuration in the docs. */
export const AGENT_CONFIG_FILE = '/etc/mesh-agent/agent.yaml';

export interface Classified {
  /** `mesh-agent run`, `meshctl ca bundle`, ...: one of our programs and its command, when it is one. */
  command?: string;
  needs: Step[];
  provides: Step[];
  /** Runs until stopped (`mesh-controlplane run`, `mesh-agent run`): the test starts it in the background. */
  longRunning: boolean;
}

const PROGRAMS: Record<string, () => Program> = {
  'mesh-agent': agentProgram,
  'mesh-controlplane': controlplaneProgram,
  meshctl: meshctlProgram,
};

/** needs and provides per `<program> <command>`; a meshctl command not listed needs the control plane. */
const RULES: Record<string, { needs?: Step[]; provides?: Step[]; longRunning?: boolean }> = {
  'mesh-controlplane run': { provides: ['controlplane'], longRunning: true },
  'mesh-agent join': { needs: ['controlplane'], provides: ['join'] },
  'mesh-agent renew': { needs: ['join'] },
  'mesh-agent svid fetch': { needs: ['join'] },
  'mesh-agent bootstrap': { needs: ['agent-config'] },
  'mesh-agent run': { needs: ['join', 'agent-config'], provides: ['agent'], longRunning: true },
  'mesh-agent status': { needs: ['agent'] },
  'mesh-agent doctor': { needs: ['agent'] },
};

export function classifyCommand(text: string): Classified {
  const [program, ...argv] = shellWords(text);
  const make = program === undefined ? undefined : PROGRAMS[program];
  if (make === undefined) return { needs: [], provides: [], longRunning: false };
  const resolved = resolveCommand(make(), argv);
  // --help, --version, `help` and `version` need nothing running.
  if (resolved.kind !== 'command' || resolved.help || resolved.command.name === 'version')
    return { needs: [], provides: [], longRunning: false };
  const command = `${program} ${resolved.command.name}`;
  const rule = RULES[command] ?? (program === 'meshctl' ? { needs: ['controlplane'] as Step[] } : {});
  return { command, needs: rule.needs ?? [], provides: rule.provides ?? [], longRunning: rule.longRunning ?? false };
}

/** A file block that writes the agent configuration sets up `agent-config`. */
export function classifyFile(file: string): Step[] {
  return file === AGENT_CONFIG_FILE ? ['agent-config'] : [];
}

/**
 * The steps of the tour to run before a doc: everything its commands need,
 * directly or through other steps, except what the doc sets up itself and
 * what depends on that (it comes after the doc's own step).
 */
export function preambleSteps(needs: Iterable<Step>, provides: Iterable<Step>): Step[] {
  const closure = new Set<Step>();
  const add = (step: Step) => {
    if (closure.has(step)) return;
    closure.add(step);
    for (const dep of DEPENDS[step]) add(dep);
  };
  for (const step of needs) add(step);
  const own = new Set(provides);
  const afterOwn = (step: Step): boolean => own.has(step) || DEPENDS[step].some(afterOwn);
  return STEPS.filter((step) => closure.has(step) && !afterOwn(step));
}
