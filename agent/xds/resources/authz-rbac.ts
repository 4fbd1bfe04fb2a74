/**
 * AuthorizationPolicy as Envoy RBAC. Pure.
 *
 * Deny wins over allow: the DENY set (the deny rules) is evaluated first, then
 * the ALLOW set. With `defaultAction: allow` there is no ALLOW filter (what no
 * deny rule matches is allowed); with `defaultAction: deny` the ALLOW filter
 * holds the allow rules and denies whatever none of them matches (Envoy names
 * that `rbac_access_denied_matched_policy[none]`).
 *
 * Each rule is one RBAC policy named `<policy>.<rule>` (names.ts
 * rbacPolicyName): Envoy puts it in the response code details / connection
 * termination details and, for HTTP, in the per-rule stats.
 * - from: ids -> authenticated principal_name exact; idPrefixes -> prefix;
 *   namespaces -> prefix `spiffe://<td>/ns/<ns>/`; absent -> any peer.
 * - http (HTTP workloads): paths (url_path, the query string is not part of
 *   it), methods (`:method`), headers; all listed kinds must match.
 * TCP workloads have no HTTP attributes: an allow rule with `http` never
 * matches there, a deny rule with `http` applies by its source alone (both
 * fail closed).
 */
import type { AuthorizationPolicySpec, AuthorizationRule, HeaderMatch, StringMatch } from '../../../lib/policy/schema.js';
import type { Named } from '../../model/inbound-policy.js';
import { httpRbacStatPrefix, networkRbacStatPrefix, rbacPolicyName } from '../names.js';
import type { XdsResource } from './common.js';

export const RBAC_T = Object.freeze({
  http: 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC',
  network: 'type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC',
});

export type Authorization = Named<AuthorizationPolicySpec>;

/** An Envoy StringMatcher from a policy string match. */
export function stringMatcher(m: StringMatch): XdsResource {
  if (m.exact !== undefined) return { exact: m.exact };
  if (m.prefix !== undefined) return { prefix: m.prefix };
  return { safe_regex: { regex: m.regex ?? '' } };
}

/** An Envoy route HeaderMatcher from a policy header match. */
export function headerMatcher(h: HeaderMatch): XdsResource {
  if (h.present !== undefined) return { name: h.name, present_match: h.present };
  return { name: h.name, string_match: stringMatcher(h) };
}

const any = (list: XdsResource[], key: 'or_ids' | 'or_rules'): XdsResource =>
  list.length === 1 ? (list[0] as XdsResource) : key === 'or_ids' ? { or_ids: { ids: list } } : { or_rules: { rules: list } };

function principals(rule: AuthorizationRule, trustDomain: string): XdsResource[] {
  const from = rule.from;
  if (from === undefined) return [{ any: true }];
  const name = (matcher: XdsResource) => ({ authenticated: { principal_name: matcher } });
  const ids = [
    ...from.ids.map((id) => name({ exact: id })),
    ...from.idPrefixes.map((p) => name({ prefix: p })),
    ...from.namespaces.map((ns) => name({ prefix: `spiffe://${trustDomain}/ns/${ns}/` })),
  ];
  // `from: {}` lists nobody: it matches no peer (never widened to any).
  return ids.length === 0 ? [{ not_id: { any: true } }] : [any(ids, 'or_ids')];
}

function permissions(rule: AuthorizationRule, http: boolean): XdsResource[] {
  if (rule.http === undefined || !http) return [{ any: true }];
  const kinds: XdsResource[] = [];
  if (rule.http.paths.length > 0)
    kinds.push(
      any(
        rule.http.paths.map((p) => ({ url_path: { path: stringMatcher(p) } })),
        'or_rules',
      ),
    );
  if (rule.http.methods.length > 0)
    kinds.push(
      any(
        rule.http.methods.map((m) => ({ header: { name: ':method', string_match: { exact: m } } })),
        'or_rules',
      ),
    );
  if (rule.http.headers.length > 0)
    kinds.push(
      any(
        rule.http.headers.map((h) => ({ header: headerMatcher(h) })),
        'or_rules',
      ),
    );
  if (kinds.length === 0) return [{ any: true }];
  return [kinds.length === 1 ? (kinds[0] as XdsResource) : { and_rules: { rules: kinds } }];
}

/** The RBAC policies of the rules with this action, keyed by rule policy name. */
export function rbacPolicies(
  authz: Authorization,
  action: 'allow' | 'deny',
  trustDomain: string,
  http: boolean,
): Record<string, XdsResource> {
  const out: Record<string, XdsResource> = {};
  for (const rule of authz.spec.rules) {
    if (rule.action !== action) continue;
    // On TCP an allow rule that needs HTTP attributes cannot be satisfied: left out.
    if (!http && action === 'allow' && rule.http !== undefined) continue;
    out[rbacPolicyName(authz.name, rule.name)] = { permissions: permissions(rule, http), principals: principals(rule, trustDomain) };
  }
  return out;
}

/** The HTTP RBAC filters, in order (deny set, then allow set); none when the policy allows everything. */
export function httpRbacFilters(authz: Authorization, trustDomain: string): XdsResource[] {
  const filters: XdsResource[] = [];
  const deny = rbacPolicies(authz, 'deny', trustDomain, true);
  if (Object.keys(deny).length > 0)
    filters.push({
      name: 'envoy.filters.http.rbac',
      typed_config: {
        '@type': RBAC_T.http,
        rules: { action: 'DENY', policies: deny },
        rules_stat_prefix: httpRbacStatPrefix('deny'),
        track_per_rule_stats: true,
      },
    });
  if (authz.spec.defaultAction === 'deny')
    filters.push({
      name: 'envoy.filters.http.rbac',
      typed_config: {
        '@type': RBAC_T.http,
        rules: { action: 'ALLOW', policies: rbacPolicies(authz, 'allow', trustDomain, true) },
        rules_stat_prefix: httpRbacStatPrefix('allow'),
        track_per_rule_stats: true,
      },
    });
  return filters;
}

/**
 * The network RBAC filters (before tcp_proxy): one per deny rule, so each has
 * its own stats (`<stat_prefix>.rbac.denied`), then the allow set when the
 * default is deny. A denied connection is closed.
 */
export function networkRbacFilters(authz: Authorization, workload: string, trustDomain: string): XdsResource[] {
  const filters: XdsResource[] = [];
  const filter = (action: 'DENY' | 'ALLOW', policies: Record<string, XdsResource>, statPrefix: string): XdsResource => ({
    name: 'envoy.filters.network.rbac',
    typed_config: { '@type': RBAC_T.network, rules: { action, policies }, stat_prefix: statPrefix },
  });
  for (const [name, policy] of Object.entries(rbacPolicies(authz, 'deny', trustDomain, false))) {
    const rule = name.slice(authz.name.length + 1);
    filters.push(filter('DENY', { [name]: policy }, networkRbacStatPrefix(workload, 'deny', rule)));
  }
  if (authz.spec.defaultAction === 'deny')
    filters.push(filter('ALLOW', rbacPolicies(authz, 'allow', trustDomain, false), networkRbacStatPrefix(workload, 'allow')));
  return filters;
}
