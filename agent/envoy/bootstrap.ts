/**
 * The Envoy bootstrap, a pure function of the agent's settings. Envoy gets
 * everything else over ADS from the agent on a Unix socket; admin listens on
 * loopback only; LDS and CDS wait for the first answer forever
 * (initial_fetch_timeout 0), so Envoy never serves a partial configuration and
 * listeners never come up without their certificates.
 */
export const ADS_CLUSTER = 'mesh-ads';

export interface BootstrapInput {
  /** Node id: `<nodeName>` (unique per agent; Envoy restarts reuse it). */
  nodeName: string;
  adminPort: number;
  /** The agent's ADS Unix socket. */
  adsSocket: string;
  /** State of the world (GRPC) or incremental (DELTA_GRPC) xDS. */
  api: 'sotw' | 'delta';
  /** Access log to stdout in Envoy's default format. */
  accessLog?: boolean;
}

const adsSource = { ads: {}, resource_api_version: 'V3', initial_fetch_timeout: { seconds: '0' } };

export function buildBootstrap(input: BootstrapInput): Record<string, unknown> {
  return {
    node: { id: input.nodeName, cluster: `mesh-agent.${input.nodeName}` },
    admin: {
      address: { socket_address: { address: '127.0.0.1', port_value: input.adminPort } },
      ...(input.accessLog
        ? {
            access_log: [
              {
                name: 'envoy.access_loggers.stdout',
                typed_config: { '@type': 'type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog' },
              },
            ],
          }
        : {}),
    },
    dynamic_resources: {
      ads_config: {
        api_type: input.api === 'delta' ? 'DELTA_GRPC' : 'GRPC',
        transport_api_version: 'V3',
        set_node_on_first_message_only: true,
        grpc_services: [{ envoy_grpc: { cluster_name: ADS_CLUSTER } }],
      },
      lds_config: adsSource,
      cds_config: adsSource,
    },
    static_resources: {
      clusters: [
        {
          name: ADS_CLUSTER,
          type: 'STATIC',
          connect_timeout: { seconds: '1' },
          typed_extension_protocol_options: {
            'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
              '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
              explicit_http_config: { http2_protocol_options: {} },
            },
          },
          load_assignment: {
            cluster_name: ADS_CLUSTER,
            endpoints: [{ lb_endpoints: [{ endpoint: { address: { pipe: { path: input.adsSocket } } } }] }],
          },
        },
      ],
    },
    stats_config: { stats_tags: [] },
  };
}
