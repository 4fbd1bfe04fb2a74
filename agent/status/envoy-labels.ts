/**
 * Which mesh labels each Envoy stat scope gets when /metrics merges Envoy's
 * stats (envoy-stats-merge.ts). Pure: a function of the ProxyModel the agent
 * built Envoy's configuration from, so the labels always match the resources
 * Envoy runs (names.ts: resource names and stat prefixes are an API).
 *
 * Envoy's default tag extractors already turn a stat's scope into a label:
 * `envoy_cluster_name` (cluster.<name>.*), `envoy_http_conn_manager_prefix`
 * (http.<stat_prefix>.*) and `envoy_tcp_prefix` (tcp.<stat_prefix>.*). The
 * agent knows what each of those belongs to:
 * - outbound cluster `outbound:<service>[:<subset>]@<caller>` and outbound
 *   listener / capture chain prefixes: source = the calling workload and its
 *   SPIFFE ID, destination = the service and the SPIFFE IDs allowed to serve
 *   it (secure naming);
 * - inbound listener / capture chain prefixes and the local app cluster
 *   `inbound:<workload>:app`: destination = the workload and its SPIFFE ID
 *   (the caller is any peer, so no source label).
 */
import type { ModelUpstream, ModelWorkload, ProxyModel } from '../model/proxy-model.js';
import {
  CAPTURE_INBOUND_LISTENER,
  CAPTURE_OUTBOUND_LISTENER,
  captureInboundChainName,
  captureOutboundChainName,
  inboundChainName,
  inboundListenerName,
  localAppClusterName,
  outboundClusterName,
  outboundListenerName,
  statPrefix,
  subsetClusterName,
} from '../xds/names.js';

/** The labels the merge adds; absent ones are left out. */
export interface MeshLabels {
  readonly source_service?: string;
  readonly source_spiffe_id?: string;
  readonly destination_service?: string;
  /** The SPIFFE IDs (or one-segment `*` patterns) allowed to serve the service, comma-separated. */
  readonly destination_spiffe_id?: string;
}

export interface LabelIndex {
  /** By cluster name as Envoy's stats spell it (label envoy_cluster_name; clusterStatName). */
  readonly clusters: ReadonlyMap<string, MeshLabels>;
  /** By HCM or tcp_proxy stat prefix (labels envoy_http_conn_manager_prefix, envoy_tcp_prefix). */
  readonly prefixes: ReadonlyMap<string, MeshLabels>;
}

/** Envoy replaces ':' in stat names with '_', so cluster `outbound:api@web` is `envoy_cluster_name="outbound_api@web"`. */
export function clusterStatName(cluster: string): string {
  return cluster.replace(/:/g, '_');
}

export const EMPTY_LABEL_INDEX: LabelIndex = { clusters: new Map(), prefixes: new Map() };

export function labelIndex(model: ProxyModel): LabelIndex {
  const clusters = new Map<string, MeshLabels>();
  const prefixes = new Map<string, MeshLabels>();
  const byName = new Map(model.workloads.map((w) => [w.name, w]));

  for (const w of model.workloads) {
    const labels = inboundLabels(w);
    clusters.set(clusterStatName(localAppClusterName(w.name)), labels);
    for (const name of [
      inboundListenerName(w.name),
      inboundChainName(w.name, 'mtls'),
      inboundChainName(w.name, 'plaintext'),
      captureInboundChainName(w.name),
      captureInboundChainName(w.name, 'mtls'),
      captureInboundChainName(w.name, 'plaintext'),
    ])
      prefixes.set(statPrefix(name), labels);
  }

  const byCallerService = new Map<string, MeshLabels>();
  for (const u of model.upstreams) {
    const labels = outboundLabels(u, byName.get(u.workload));
    byCallerService.set(`${u.service}@${u.workload}`, labels);
    clusters.set(clusterStatName(outboundClusterName(u.service, u.workload)), labels);
    for (const subset of u.traffic?.subsets ?? [])
      clusters.set(clusterStatName(subsetClusterName(u.service, subset.name, u.workload)), labels);
    if (u.localPort > 0) prefixes.set(statPrefix(outboundListenerName(u.service, u.localPort)), labels);
  }

  const capture = model.capture;
  if (capture !== undefined) {
    for (const chain of capture.chains) {
      const labels = byCallerService.get(`${chain.service}@${capture.caller}`);
      if (labels !== undefined) prefixes.set(statPrefix(captureOutboundChainName(chain.service, chain.port)), labels);
    }
    // The listeners' own scopes carry no single service; nothing to add.
    prefixes.delete(statPrefix(CAPTURE_INBOUND_LISTENER));
    prefixes.delete(statPrefix(CAPTURE_OUTBOUND_LISTENER));
  }
  return { clusters, prefixes };
}

function inboundLabels(w: ModelWorkload): MeshLabels {
  return { destination_service: w.name, destination_spiffe_id: w.spiffeId };
}

function outboundLabels(u: ModelUpstream, caller: ModelWorkload | undefined): MeshLabels {
  return {
    source_service: u.workload,
    ...(caller === undefined ? {} : { source_spiffe_id: caller.spiffeId }),
    destination_service: u.service,
    destination_spiffe_id: [...u.acceptedIdentities].sort().join(','),
  };
}
