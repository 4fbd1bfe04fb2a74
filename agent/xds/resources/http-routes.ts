/**
 * One TrafficRoute HTTP rule -> one Envoy route, in the rule's order:
 * - match: path exact (`path`), prefix (`prefix`) or regex (`safe_regex`),
 *   method as a `:method` header, headers (exact, prefix, safe_regex, present);
 * - destinations: one cluster, or weighted_clusters across subset clusters;
 * - timeout, retry_policy (num_retries, per_try_timeout, retry_on);
 * - fault: typed_per_filter_config for envoy.filters.http.fault (the outbound
 *   HCM carries the filter with an empty config);
 * - mirror: request_mirror_policies with a runtime_fraction, to a subset
 *   cluster or to the caller's cluster of another service;
 * - hash_policy from a ring-hash TrafficPolicy (header or cookie), on every route.
 */
import type { HeaderMatch, HttpRouteRule, RouteDestination, StringMatch } from '../../../lib/policy/schema.js';
import type { ModelUpstream } from '../../model/proxy-model.js';
import { outboundClusterName } from '../names.js';
import { durationOf, FAULT_FILTER, fractionalPercent, T, type XdsResource } from './common.js';
import { destinationCluster } from './outbound-cluster.js';

function pathMatch(path: StringMatch | undefined): XdsResource {
  if (path?.exact !== undefined) return { path: path.exact };
  if (path?.prefix !== undefined) return { prefix: path.prefix };
  if (path?.regex !== undefined) return { safe_regex: { regex: path.regex } };
  return { prefix: '/' };
}

function headerMatcher(h: HeaderMatch): XdsResource {
  if (h.present !== undefined) return { name: h.name, present_match: h.present };
  if (h.exact !== undefined) return { name: h.name, string_match: { exact: h.exact } };
  if (h.prefix !== undefined) return { name: h.name, string_match: { prefix: h.prefix } };
  return { name: h.name, string_match: { safe_regex: { regex: h.regex } } };
}

export function routeMatch(rule: HttpRouteRule): XdsResource {
  const headers = rule.match.headers.map(headerMatcher);
  if (rule.match.method !== undefined) headers.unshift({ name: ':method', string_match: { exact: rule.match.method } });
  return headers.length === 0 ? pathMatch(rule.match.path) : { ...pathMatch(rule.match.path), headers };
}

/** `cluster` for one destination, `weighted_clusters` for several (weight-0 entries left out). */
export function destinations(upstream: ModelUpstream, list: readonly RouteDestination[]): XdsResource {
  const weighted = list.filter((d) => d.weight > 0);
  const only = weighted.length === 1 ? weighted[0] : undefined;
  if (only !== undefined || weighted.length === 0) return { cluster: destinationCluster(upstream, (only ?? list[0])?.subset) };
  return {
    weighted_clusters: { clusters: weighted.map((d) => ({ name: destinationCluster(upstream, d.subset), weight: { value: d.weight } })) },
  };
}

export function hashPolicy(upstream: ModelUpstream): XdsResource[] | undefined {
  const hash = upstream.traffic?.policy?.loadBalancer?.hash;
  if (hash === undefined) return undefined;
  if (hash.header !== undefined) return [{ header: { header_name: hash.header } }];
  const cookie: XdsResource = { name: hash.cookie?.name };
  if (hash.cookie?.ttl !== undefined) cookie.ttl = durationOf(hash.cookie.ttl);
  return [{ cookie }];
}

function faultConfig(fault: NonNullable<HttpRouteRule['fault']>): XdsResource {
  const config: XdsResource = { '@type': T.fault };
  if (fault.delay !== undefined)
    config.delay = { fixed_delay: durationOf(fault.delay.duration), percentage: fractionalPercent(fault.delay.percent) };
  if (fault.abort !== undefined) config.abort = { http_status: fault.abort.status, percentage: fractionalPercent(fault.abort.percent) };
  return config;
}

export function buildRuleRoute(upstream: ModelUpstream, rule: HttpRouteRule): XdsResource {
  const action: XdsResource = destinations(upstream, rule.destinations);
  if (rule.timeout !== undefined) action.timeout = durationOf(rule.timeout);
  else if (upstream.protocol === 'grpc') action.timeout = { seconds: '0' };
  if (rule.retries !== undefined) {
    const retry: XdsResource = { retry_on: rule.retries.retryOn.join(','), num_retries: { value: rule.retries.attempts } };
    if (rule.retries.perTryTimeout !== undefined) retry.per_try_timeout = durationOf(rule.retries.perTryTimeout);
    action.retry_policy = retry;
  }
  if (rule.mirror !== undefined) {
    const cluster =
      rule.mirror.service !== undefined
        ? outboundClusterName(rule.mirror.service, upstream.workload)
        : destinationCluster(upstream, rule.mirror.subset);
    action.request_mirror_policies = [{ cluster, runtime_fraction: { default_value: fractionalPercent(rule.mirror.percent) } }];
  }
  const hash = hashPolicy(upstream);
  if (hash !== undefined) action.hash_policy = hash;
  const route: XdsResource = { name: rule.name, match: routeMatch(rule), route: action };
  if (rule.fault !== undefined) route.typed_per_filter_config = { [FAULT_FILTER]: faultConfig(rule.fault) };
  return route;
}
