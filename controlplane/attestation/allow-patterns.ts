/**
 * Which SPIFFE IDs a node may hold: patterns given at token creation, each a
 * SPIFFE ID of the mesh's trust domain where a whole path segment may be `*`
 * (for example spiffe://td/ns/STAR/sa/web, where STAR is an asterisk). A `*` matches exactly one segment.
 */
import { MeshError } from '../../lib/errors.js';
import { parseSpiffeId, type SpiffeId } from '../../lib/spiffe-id.js';

export function validatePattern(pattern: string, trustDomain: string): string {
  // Parse with a placeholder for `*`, so the rest of the pattern follows the ID rules.
  const placeholder = 'x-wildcard-x';
  const parsed = parseSpiffeId(
    pattern
      .split('/')
      .map((s, i) => (i >= 3 && s === '*' ? placeholder : s))
      .join('/'),
  );
  if (parsed.trustDomain !== trustDomain) {
    throw new MeshError('MESH_E_NOT_AUTHORIZED', `pattern ${pattern} is outside the trust domain ${trustDomain}`, { details: { pattern } });
  }
  if (parsed.segments.length === 0) {
    throw new MeshError('MESH_E_SPIFFE_ID_INVALID', `pattern ${pattern} has no path; workload IDs have one`, {
      details: { pattern, reason: 'empty' },
    });
  }
  if (parsed.segments[0] === 'mesh') {
    throw new MeshError('MESH_E_NOT_AUTHORIZED', `pattern ${pattern} is in the reserved /mesh/ namespace`, { details: { pattern } });
  }
  return pattern;
}

/** Patterns were validated when the token was made; here they are only split, on the signing path. */
export function matchesPattern(id: SpiffeId, pattern: string): boolean {
  const [, , trustDomain, ...segments] = pattern.split('/');
  if (trustDomain !== id.trustDomain || segments.length !== id.segments.length) return false;
  return segments.every((segment, i) => segment === '*' || segment === id.segments[i]);
}

export function isAllowed(id: SpiffeId, patterns: readonly string[]): boolean {
  return patterns.some((pattern) => matchesPattern(id, pattern));
}
