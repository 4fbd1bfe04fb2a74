/**
 * GET /metrics of the status listener: the agent's registry, then Envoy's own
 * stats fetched from its admin API (/stats/prometheus) with the mesh labels
 * added (envoy-stats-merge.ts). One scrape target per host gives both, like
 * Istio's merged metrics. When Envoy's admin API does not answer (Envoy
 * starting, restarting, stopped), the agent's metrics are served alone and
 * mesh_agent_envoy_stats_scrape_failures_total counts it.
 */
import type { Logger } from '../../lib/logger.js';
import { type AdminRequest, httpAdmin } from '../envoy/admin-client.js';
import type { AgentMetrics } from './agent-metrics.js';
import type { LabelIndex } from './envoy-labels.js';
import { enrichEnvoyStats } from './envoy-stats-merge.js';

export interface MetricsResponse {
  contentType: string;
  body: string;
}

export interface MetricsEndpointOptions {
  metrics: AgentMetrics;
  /** host:port of the current Envoy's admin API; undefined while there is none. */
  envoyAdmin: () => string | undefined;
  /** The labels of the configuration Envoy runs. */
  labels: () => LabelIndex;
  log: Logger;
  admin?: AdminRequest;
}

/** Only the stats Envoy has written to (`usedonly`): a fresh Envoy has thousands of zero series. */
export const ENVOY_STATS_PATH = '/stats/prometheus?usedonly';

export function metricsEndpoint(options: MetricsEndpointOptions): () => Promise<MetricsResponse> {
  const admin = options.admin ?? httpAdmin;
  let lastFailure: string | undefined;
  return async () => {
    const address = options.envoyAdmin();
    let envoy = '';
    if (address !== undefined) {
      try {
        const answer = await admin(address, 'GET', ENVOY_STATS_PATH);
        if (answer.status !== 200) throw new Error(`HTTP ${answer.status}`);
        envoy = enrichEnvoyStats(answer.body, options.labels());
        lastFailure = undefined;
      } catch (err) {
        options.metrics.recordEnvoyStatsFailure();
        const message = (err as Error).message;
        if (message !== lastFailure)
          options.log.warn("cannot read Envoy's stats for /metrics; serving the agent's alone", { admin: address, error: message });
        lastFailure = message;
      }
    }
    const own = await options.metrics.text();
    const body = envoy === '' ? own : `${own.endsWith('\n') ? own : `${own}\n`}${envoy.endsWith('\n') ? envoy : `${envoy}\n`}`;
    return { contentType: options.metrics.registry.contentType, body };
  };
}
