/**
 * What bench/vs-consul reads from an Envoy's admin API, as pure functions of
 * the answers: the endpoints of one cluster in an EDS config_dump (healthy or
 * not, by address), the dynamic clusters of a CDS config_dump, the ADS
 * cluster named by the bootstrap, and the `update_rejected` stats (NACKs).
 * The same code reads our Envoy and Consul's, so both are measured alike.
 */

interface SocketAddress {
  address?: string;
  port_value?: number;
}

interface LbEndpoint {
  endpoint?: { address?: { socket_address?: SocketAddress } };
  health_status?: string;
}

interface EndpointConfig {
  cluster_name?: string;
  endpoints?: Array<{ lb_endpoints?: LbEndpoint[] }>;
}

export interface ClusterEndpoints {
  /** `address:port` of every endpoint Envoy holds for the cluster. */
  all: string[];
  /** Those Envoy may route to: health_status absent, UNKNOWN or HEALTHY (Consul sends critical ones as UNHEALTHY; ours leaves them out). */
  healthy: string[];
}

const ROUTABLE = new Set([undefined, 'UNKNOWN', 'HEALTHY']);

/** The endpoints of `cluster` in a `/config_dump?include_eds&resource=dynamic_endpoint_configs` answer; undefined when absent. */
export function clusterEndpoints(dumpJson: string, cluster: string): ClusterEndpoints | undefined {
  const dump = JSON.parse(dumpJson) as { configs?: Array<{ endpoint_config?: EndpointConfig }> };
  const cla = dump.configs?.find((c) => c.endpoint_config?.cluster_name === cluster)?.endpoint_config;
  if (cla === undefined) return undefined;
  const all: string[] = [];
  const healthy: string[] = [];
  for (const locality of cla.endpoints ?? []) {
    for (const lb of locality.lb_endpoints ?? []) {
      const sa = lb.endpoint?.address?.socket_address;
      const name = `${sa?.address ?? '?'}:${sa?.port_value ?? '?'}`;
      all.push(name);
      if (ROUTABLE.has(lb.health_status)) healthy.push(name);
    }
  }
  return { all, healthy };
}

/** The `name_regex` that selects exactly one cluster (Envoy's RE2: dots and other metacharacters escaped). */
export function exactNameRegex(name: string): string {
  return `^${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`;
}

type DumpConfig = Record<string, unknown> & { '@type'?: string };

function configOf(dump: { configs?: DumpConfig[] }, typeSuffix: string): DumpConfig | undefined {
  return dump.configs?.find((c) => c['@type']?.endsWith(typeSuffix));
}

/**
 * The dynamic active clusters of a full `/config_dump`, each as its cluster
 * name and its EDS resource name (`eds_cluster_config.service_name` when set,
 * else the cluster's name).
 */
export function edsClusters(dump: { configs?: DumpConfig[] }): Array<{ cluster: string; eds: string }> {
  const clusters = configOf(dump, '.ClustersConfigDump') as
    | { dynamic_active_clusters?: Array<{ cluster?: { name?: string; eds_cluster_config?: { service_name?: string } } }> }
    | undefined;
  return (clusters?.dynamic_active_clusters ?? []).flatMap((c) => {
    const cluster = c.cluster?.name;
    if (cluster === undefined) return [];
    return [{ cluster, eds: c.cluster?.eds_cluster_config?.service_name || cluster }];
  });
}

/** A cluster's name as Envoy writes it in stat names (a `:` becomes `_`). */
export function statScope(cluster: string): string {
  return cluster.replaceAll(':', '_');
}

/** The `/stats?filter=` regex of one cluster's `update_time` gauge (its EDS subscription's last accepted update, ms since the epoch). */
export function updateTimeFilter(cluster: string): string {
  return `^cluster\\.${exactNameRegex(statScope(cluster)).slice(1, -1)}\\.update_time$`;
}

/**
 * The EDS resource names of the dynamic active clusters in a full `/config_dump`
 * (the ClustersConfigDump): `eds_cluster_config.service_name` when set (ours:
 * cluster `outbound:<service>@<caller>` reads `outbound:<service>`), else the
 * cluster's name (Consul's). These are the `cluster_name`s of the EDS dump.
 */
export function edsNames(dump: { configs?: DumpConfig[] }): string[] {
  return edsClusters(dump).map((c) => c.eds);
}

/** The cluster the bootstrap's ADS talks to (`mesh-ads` for ours, `local_agent` for Consul's), from a full `/config_dump`. */
export function adsClusterName(dump: { configs?: DumpConfig[] }): string | undefined {
  const boot = configOf(dump, '.BootstrapConfigDump') as
    | {
        bootstrap?: {
          dynamic_resources?: { ads_config?: { grpc_services?: Array<{ envoy_grpc?: { cluster_name?: string } }> } };
        };
      }
    | undefined;
  return boot?.bootstrap?.dynamic_resources?.ads_config?.grpc_services?.[0]?.envoy_grpc?.cluster_name;
}

/**
 * For each service, the one cluster `belongs(service, name)` picks among `names`;
 * throws when a service has none or several (the mapping is then not what the bench assumes).
 */
export function clustersByService(
  services: readonly string[],
  names: readonly string[],
  belongs: (service: string, name: string) => boolean,
): Map<string, string> {
  const out = new Map<string, string>();
  for (const service of services) {
    const found = names.filter((n) => belongs(service, n));
    if (found.length !== 1) throw new Error(`expected one cluster for ${service}, found ${found.length}: ${found.slice(0, 3).join(', ')}`);
    out.set(service, found[0] as string);
  }
  return out;
}

/** The `update_rejected` stats above 0 (NACKs: CDS, LDS, RDS, per-cluster EDS, SDS), from a name -> value map. */
export function rejectedUpdates(stats: ReadonlyMap<string, number>): Array<[string, number]> {
  return [...stats].filter(([name, value]) => name.endsWith('update_rejected') && value > 0);
}

/** How many `update_rejected` stats there are at all (0 would mean the filter matched nothing, not "no NACK"). */
export function rejectedStatCount(stats: ReadonlyMap<string, number>): number {
  return [...stats.keys()].filter((name) => name.endsWith('update_rejected')).length;
}
