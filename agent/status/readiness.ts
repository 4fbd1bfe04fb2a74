/**
 * When the agent counts as ready (the unit's READY=1, so `systemctl start`
 * returns): without a data plane, once start-up is over; with one, once
 * Envoy runs (or hot-restarts: the old epoch serves on) and has acknowledged
 * its first snapshot, i.e. both wildcard types, clusters (CDS) and listeners
 * (LDS), carry an acknowledged version. Envoy acknowledges LDS only after the
 * clusters it routes to, so this is Envoy configured and taking traffic.
 *
 * Pure: a function of the status document.
 */
import type { StatusDocument } from './status.js';

export interface Readiness {
  readonly ready: boolean;
  /** What the agent still waits for, when not ready (shown as the unit's STATUS=). */
  readonly waitingFor?: string;
}

const SERVING = new Set(['running', 'hot-restarting']);
const FIRST_SNAPSHOT = ['CDS', 'LDS'] as const;

export function agentReadiness(doc: Pick<StatusDocument, 'envoy' | 'xds'>): Readiness {
  if (doc.envoy === undefined) return { ready: true };
  if (!SERVING.has(doc.envoy.state)) return { ready: false, waitingFor: `Envoy (${doc.envoy.state})` };
  const types = doc.xds?.types ?? [];
  const missing = FIRST_SNAPSHOT.filter((short) => types.find((t) => t.type === short)?.ackedVersion === undefined);
  if (missing.length > 0) {
    const nack = types.find((t) => t.lastNack !== undefined)?.lastNack;
    return {
      ready: false,
      waitingFor: `Envoy to acknowledge its first snapshot (${missing.join(', ')})${nack === undefined ? '' : `; rejected: ${nack.detail}`}`,
    };
  }
  return { ready: true };
}
