/**
 * RateLimit as Envoy's local rate limit (envoy.filters.http.local_ratelimit)
 * on the inbound HTTP connection manager. Pure.
 *
 * Token bucket per workload: `tokens_per_fill` = requestsPerSecond every
 * `fill_interval` 1 s, `max_tokens` = burst, or requestsPerSecond when burst
 * is 0 (so the bucket never holds less than one second's worth by default;
 * a burst of 1..rps-1 lowers the peak on purpose). Enabled and enforced for
 * 100 % of requests. Over the limit: 429 with `x-mesh-ratelimited: true`.
 *
 * Per-route buckets: each `routes[]` entry becomes an inbound route matched by
 * path (before the catch-all) whose typed_per_filter_config replaces the
 * workload-wide bucket with its own.
 */
import type { RateLimitSpec } from '../../../lib/policy/schema.js';
import type { Named } from '../../model/inbound-policy.js';
import { rateLimitRouteName, rateLimitStatPrefix } from '../names.js';
import { stringMatcher } from './authz-rbac.js';
import type { XdsResource } from './common.js';

export const LOCAL_RATELIMIT_FILTER = 'envoy.filters.http.local_ratelimit';
export const LOCAL_RATELIMIT_T = 'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit';
/** The header a rate-limited response carries. */
export const RATE_LIMITED_HEADER = 'x-mesh-ratelimited';

export type RateLimit = Named<RateLimitSpec>;

const ALL = { default_value: { numerator: 100, denominator: 'HUNDRED' }, runtime_key: 'mesh.local_ratelimit' };

/** The max_tokens of a bucket: the burst, or one second's worth when the burst is 0. */
export function bucketSize(bucket: { requestsPerSecond: number; burst: number }): number {
  return bucket.burst > 0 ? bucket.burst : bucket.requestsPerSecond;
}

function localRateLimit(statPrefix: string, bucket: { requestsPerSecond: number; burst: number }): XdsResource {
  return {
    '@type': LOCAL_RATELIMIT_T,
    stat_prefix: statPrefix,
    status: { code: 'TooManyRequests' },
    token_bucket: {
      max_tokens: bucketSize(bucket),
      tokens_per_fill: { value: bucket.requestsPerSecond },
      fill_interval: { seconds: '1' },
    },
    filter_enabled: { ...ALL, runtime_key: `${ALL.runtime_key}.enabled` },
    filter_enforced: { ...ALL, runtime_key: `${ALL.runtime_key}.enforced` },
    response_headers_to_add: [{ header: { key: RATE_LIMITED_HEADER, value: 'true' }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' }],
  };
}

/** The HTTP filter with the workload-wide bucket. */
export function rateLimitFilter(limit: RateLimit, workload: string): XdsResource {
  return { name: LOCAL_RATELIMIT_FILTER, typed_config: localRateLimit(rateLimitStatPrefix(workload), limit.spec) };
}

/** The per-route buckets as routes to `appRoute` (the route action to the local app), before the catch-all. */
export function rateLimitRoutes(limit: RateLimit, workload: string, appRoute: XdsResource): XdsResource[] {
  return limit.spec.routes.map((r) => {
    const path = stringMatcher(r.path);
    const match =
      r.path.exact !== undefined
        ? { path: r.path.exact }
        : r.path.prefix !== undefined
          ? { prefix: r.path.prefix }
          : { safe_regex: path.safe_regex };
    return {
      name: rateLimitRouteName(r.name),
      match,
      route: appRoute,
      typed_per_filter_config: { [LOCAL_RATELIMIT_FILTER]: localRateLimit(rateLimitStatPrefix(workload, r.name), r) },
    };
  });
}
