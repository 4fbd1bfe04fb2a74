/**
 * The route configuration (RDS) of an HTTP-like upstream, one per caller:
 * the TrafficRoute's HTTP rules in order (http-routes.ts), then a catch-all
 * (`default`) to all instances of the service. gRPC routes have no timeout
 * unless a rule sets one (streams may be long-lived).
 */
import type { ModelTracing, ModelUpstream } from '../../model/proxy-model.js';
import { DEFAULT_ROUTE_NAME, outboundClusterName, outboundRouteName } from '../names.js';
import type { XdsResource } from './common.js';
import { buildRuleRoute, hashPolicy } from './http-routes.js';
import { decorateRoutes } from './tracing.js';

/** tracing on: every route names its span `<caller> -> <service>` (./tracing.ts). */
export function buildOutboundRouteConfig(upstream: ModelUpstream, tracing?: ModelTracing): XdsResource {
  const route: XdsResource = { cluster: outboundClusterName(upstream.service, upstream.workload) };
  if (upstream.protocol === 'grpc') route.timeout = { seconds: '0' };
  const hash = hashPolicy(upstream);
  if (hash !== undefined) route.hash_policy = hash;
  const rules = (upstream.traffic?.route?.http ?? []).map((rule) => buildRuleRoute(upstream, rule));
  return {
    name: outboundRouteName(upstream.service, upstream.workload),
    virtual_hosts: [
      {
        name: upstream.service,
        domains: ['*'],
        routes: decorateRoutes([...rules, { name: DEFAULT_ROUTE_NAME, match: { prefix: '/' }, route }], tracing, {
          direction: 'outbound',
          service: upstream.service,
          caller: upstream.workload,
        }),
      },
    ],
  };
}
