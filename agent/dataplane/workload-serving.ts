/**
 * Whether Envoy really serves each workload's mesh listener, and if not, why.
 * Pure: it reads what the data plane knows (Envoy's state, the model's
 * problems, the served snapshot, what Envoy acknowledged). The agent turns the
 * answer into the workload's "mesh listener" check in Consul, so the catalog
 * sends callers only to instances that can take their traffic, and status
 * shows the same reason.
 *
 * A workload serves when Envoy is running (or hot-restarting: the old epoch
 * serves), its inbound listener is in the served snapshot, and Envoy has
 * acknowledged both that listener and the workload's certificate secret.
 * Any version Envoy acknowledged counts: after a refused or rejected newer
 * configuration, Envoy keeps serving the older one.
 */
import { describeExit } from '../envoy/supervisor-state.js';
import type { ModelProblem } from '../model/build-model.js';
import type { AckedResources } from '../xds/cache/acked-resources.js';
import { identitySecretName, inboundListenerName } from '../xds/names.js';

export interface WorkloadServing {
  readonly serving: boolean;
  /** Why not; or, when serving, what serves ("Envoy serves its mesh listener on port 18080"). */
  readonly reason: string;
}

export interface ServingInput {
  readonly workloads: ReadonlyArray<{ readonly name: string; readonly spiffeId: string; readonly meshPort: number }>;
  readonly problems: readonly ModelProblem[];
  /** Undefined when Envoy is not run by the agent (tests). */
  readonly envoy?: { readonly state: string; readonly lastExit?: { readonly code: number | null; readonly signal: string | null } };
  /** The listeners of the snapshot being served (by name); undefined before the first one. */
  readonly servedListeners: { has(name: string): boolean } | undefined;
  readonly acked: AckedResources;
  /** Why the latest snapshot was refused, if it was. */
  readonly snapshotError?: string;
  /** Envoy's latest rejection (NACK) per xDS type (LDS, SDS, ...), if newer than its latest ACK. */
  readonly rejected?: ReadonlyMap<string, string>;
  /** The last error of each SVID that cannot be obtained, by SPIFFE ID. */
  readonly svidErrors?: ReadonlyMap<string, string>;
}

const ENVOY_SERVING_STATES = new Set(['running', 'hot-restarting']);

function envoyDown(envoy: NonNullable<ServingInput['envoy']>): string {
  return `Envoy is ${envoy.state}${envoy.lastExit === undefined ? '' : ` (last exit: ${describeExit(envoy.lastExit)})`}`;
}

export function workloadServing(input: ServingInput): Map<string, WorkloadServing> {
  const out = new Map<string, WorkloadServing>();
  const no = (name: string, reason: string) => out.set(name, { serving: false, reason });
  for (const w of input.workloads) {
    if (input.envoy !== undefined && !ENVOY_SERVING_STATES.has(input.envoy.state)) {
      no(w.name, envoyDown(input.envoy));
      continue;
    }
    const problem = input.problems.find((p) => p.workload === w.name && p.part === 'inbound');
    if (problem !== undefined) {
      const svidError = input.svidErrors?.get(w.spiffeId);
      no(w.name, svidError === undefined ? problem.reason : `${problem.reason}: ${svidError}`);
      continue;
    }
    const listener = inboundListenerName(w.name);
    if (input.servedListeners === undefined || !input.servedListeners.has(listener)) {
      no(
        w.name,
        input.snapshotError === undefined ? 'not in the configuration yet' : `its configuration was refused: ${input.snapshotError}`,
      );
      continue;
    }
    if (!input.acked.listeners.has(listener)) {
      const nack = input.rejected?.get('LDS');
      no(w.name, `Envoy has not accepted its listener yet${nack === undefined ? '' : ` (Envoy rejected LDS: ${nack})`}`);
      continue;
    }
    if (!input.acked.secrets.has(identitySecretName(w.spiffeId))) {
      const nack = input.rejected?.get('SDS');
      no(w.name, `Envoy has not accepted its certificate yet${nack === undefined ? '' : ` (Envoy rejected SDS: ${nack})`}`);
      continue;
    }
    out.set(w.name, { serving: true, reason: `Envoy serves its mesh listener on port ${w.meshPort}` });
  }
  return out;
}
