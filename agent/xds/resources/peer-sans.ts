/**
 * Secure naming in Envoy: the URI SAN matchers an outbound cluster applies to
 * the server's certificate, built from the accepted identities of the model
 * (agent/model/secure-naming.ts), never from catalog meta. An exact SPIFFE ID
 * becomes an `exact` matcher; a pattern with `*` segments becomes an anchored
 * RE2 `safe_regex` where each `*` is one path segment (`[^/]+`).
 */
import type { XdsResource } from './common.js';

/**
 * A URI SAN no certificate carries: the SAN list must never be empty, because
 * an empty list would accept any peer the trust bundle accepts.
 */
export const NO_PEER_SAN = 'urn:mesh:no-accepted-identity';

const RE2_SPECIAL = /[\\^$.|?*+()[\]{}]/g;

/** The anchored RE2 regex of a pattern: literal segments escaped, `*` as one segment. */
export function identityPatternRegex(pattern: string): string {
  const segments = pattern.split('/').map((seg) => (seg === '*' ? '[^/]+' : seg.replace(RE2_SPECIAL, '\\$&')));
  return `^${segments.join('/')}$`;
}

/** One URI SAN matcher per accepted identity, in the given order. */
export function peerSanMatchers(accepted: readonly string[]): XdsResource[] {
  const list = accepted.length === 0 ? [NO_PEER_SAN] : accepted;
  return list.map((p) => ({
    san_type: 'URI',
    matcher: p.split('/').includes('*') ? { safe_regex: { regex: identityPatternRegex(p) } } : { exact: p },
  }));
}
