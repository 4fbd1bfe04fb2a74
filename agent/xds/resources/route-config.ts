/**
 * The route configuration (RDS) of an HTTP-like upstream: every request on
 * the outbound listener goes to the service's cluster. gRPC routes have no
 * timeout (streams may be long-lived).
 */
import type { ModelUpstream } from '../../model/proxy-model.js';
import { outboundClusterName, outboundRouteName } from '../names.js';
import type { XdsResource } from './common.js';

export function buildOutboundRouteConfig(upstream: ModelUpstream): XdsResource {
  const route: XdsResource = { cluster: outboundClusterName(upstream.service) };
  if (upstream.protocol === 'grpc') route.timeout = { seconds: '0' };
  return {
    name: outboundRouteName(upstream.service),
    virtual_hosts: [{ name: upstream.service, domains: ['*'], routes: [{ match: { prefix: '/' }, route }] }],
  };
}
