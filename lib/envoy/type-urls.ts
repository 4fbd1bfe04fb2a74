/** xDS type URLs: the resource kinds the agent serves over ADS. */
export const TYPE_URL_PREFIX = 'type.googleapis.com/';

export const TypeUrl = Object.freeze({
  Listener: 'type.googleapis.com/envoy.config.listener.v3.Listener',
  RouteConfiguration: 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
  Cluster: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  ClusterLoadAssignment: 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
  Secret: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret',
} as const);

export type XdsTypeUrl = (typeof TypeUrl)[keyof typeof TypeUrl];

export function typeUrlOf(fullTypeName: string): string {
  return `${TYPE_URL_PREFIX}${fullTypeName.replace(/^\./, '')}`;
}

export function typeNameOf(typeUrl: string): string {
  return typeUrl.slice(typeUrl.lastIndexOf('/') + 1);
}
