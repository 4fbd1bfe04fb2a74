/**
 * SPIFFE IDs per the SPIFFE ID and X.509-SVID specifications:
 * `spiffe://<trust-domain>[/<segment>...]`, trust domain of [a-z0-9._-],
 * path segments of [a-zA-Z0-9._-], no empty, "." or ".." segments, no trailing
 * slash, no port, user info, query or fragment, no percent-encoding.
 */
import { MeshError } from './errors.js';

export interface SpiffeId {
  readonly trustDomain: string;
  /** "" for a trust domain ID, else "/seg/seg". */
  readonly path: string;
  /** The segments of the path, without slashes. */
  readonly segments: readonly string[];
  toString(): string;
}

export type SpiffeIdReason =
  | 'empty'
  | 'too-long'
  | 'bad-scheme'
  | 'missing-trust-domain'
  | 'bad-trust-domain-char'
  | 'trust-domain-too-long'
  | 'empty-segment'
  | 'dot-segment'
  | 'trailing-slash'
  | 'bad-path-char';

const SCHEME = 'spiffe://';
const MAX_ID_BYTES = 2048;
const MAX_TRUST_DOMAIN = 255;
const TRUST_DOMAIN_CHAR = /^[a-z0-9._-]$/;
const SEGMENT_CHAR = /^[a-zA-Z0-9._-]$/;

const REASON_TEXT: Record<SpiffeIdReason, string> = {
  empty: 'is empty',
  'too-long': `is longer than ${MAX_ID_BYTES} bytes`,
  'bad-scheme': 'must start with "spiffe://" (lower case)',
  'missing-trust-domain': 'has no trust domain',
  'bad-trust-domain-char': 'has a trust domain character other than lower-case letters, digits, ".", "-" and "_" (no port, no user info)',
  'trust-domain-too-long': `has a trust domain longer than ${MAX_TRUST_DOMAIN} characters`,
  'empty-segment': 'has an empty path segment',
  'dot-segment': 'has a "." or ".." path segment',
  'trailing-slash': 'ends with a slash',
  'bad-path-char': 'has a path character other than letters, digits, ".", "-" and "_" (no query, fragment or percent-encoding)',
};

function fail(input: string, reason: SpiffeIdReason, what = 'SPIFFE ID'): never {
  throw new MeshError('MESH_E_SPIFFE_ID_INVALID', `${what} ${JSON.stringify(input)} ${REASON_TEXT[reason]}`, {
    details: { input, reason },
  });
}

function make(trustDomain: string, segments: readonly string[]): SpiffeId {
  const path = segments.length === 0 ? '' : `/${segments.join('/')}`;
  const text = `${SCHEME}${trustDomain}${path}`;
  return Object.freeze({
    trustDomain,
    path,
    segments: Object.freeze([...segments]),
    toString: () => text,
  });
}

/** Validates a trust domain name; returns it unchanged. */
export function validateTrustDomain(trustDomain: string): string {
  if (trustDomain.length === 0) fail(trustDomain, 'missing-trust-domain', 'trust domain');
  if (trustDomain.length > MAX_TRUST_DOMAIN) fail(trustDomain, 'trust-domain-too-long', 'trust domain');
  for (const ch of trustDomain) {
    if (!TRUST_DOMAIN_CHAR.test(ch)) fail(trustDomain, 'bad-trust-domain-char', 'trust domain');
  }
  return trustDomain;
}

/** Validates one path segment (as used in ns/<ns>/sa/<sa>). */
export function validateSegment(segment: string, what = 'SPIFFE ID path segment'): string {
  if (segment.length === 0) fail(segment, 'empty-segment', what);
  if (segment === '.' || segment === '..') fail(segment, 'dot-segment', what);
  for (const ch of segment) {
    if (!SEGMENT_CHAR.test(ch)) fail(segment, 'bad-path-char', what);
  }
  return segment;
}

export function parseSpiffeId(input: string): SpiffeId {
  if (input.length === 0) fail(input, 'empty');
  if (Buffer.byteLength(input, 'utf8') > MAX_ID_BYTES) fail(input, 'too-long');
  if (!input.startsWith(SCHEME)) fail(input, 'bad-scheme');
  const rest = input.slice(SCHEME.length);
  const slash = rest.indexOf('/');
  const trustDomain = slash === -1 ? rest : rest.slice(0, slash);
  if (trustDomain.length === 0) fail(input, 'missing-trust-domain');
  if (trustDomain.length > MAX_TRUST_DOMAIN) fail(input, 'trust-domain-too-long');
  for (const ch of trustDomain) {
    if (!TRUST_DOMAIN_CHAR.test(ch)) fail(input, 'bad-trust-domain-char');
  }
  if (slash === -1) return make(trustDomain, []);
  const path = rest.slice(slash);
  if (path.endsWith('/')) fail(input, path === '/' ? 'empty-segment' : 'trailing-slash');
  const segments = path.slice(1).split('/');
  for (const segment of segments) {
    if (segment.length === 0) fail(input, 'empty-segment');
    if (segment === '.' || segment === '..') fail(input, 'dot-segment');
    for (const ch of segment) {
      if (!SEGMENT_CHAR.test(ch)) fail(input, 'bad-path-char');
    }
  }
  return make(trustDomain, segments);
}

export function isValidSpiffeId(input: string): boolean {
  try {
    parseSpiffeId(input);
    return true;
  } catch {
    return false;
  }
}

/** Builds an ID from a trust domain and path segments, validating each part. */
export function formatSpiffeId(trustDomain: string, ...segments: string[]): SpiffeId {
  validateTrustDomain(trustDomain);
  for (const segment of segments) validateSegment(segment);
  return make(trustDomain, segments);
}

/** The ID of a trust domain itself (what a signing certificate may carry). */
export function trustDomainId(trustDomain: string): SpiffeId {
  return formatSpiffeId(trustDomain);
}

/** `spiffe://<td>/ns/<namespace>/sa/<serviceAccount>`, the naming Kubernetes workloads share. */
export function workloadId(trustDomain: string, namespace: string, serviceAccount: string): SpiffeId {
  validateSegment(namespace, 'namespace');
  validateSegment(serviceAccount, 'service account');
  return formatSpiffeId(trustDomain, 'ns', namespace, 'sa', serviceAccount);
}

export interface WorkloadName {
  readonly namespace: string;
  readonly serviceAccount: string;
}

/** The namespace and service account of an `ns/<ns>/sa/<sa>` ID, or undefined for other shapes. */
export function workloadNameOf(id: SpiffeId): WorkloadName | undefined {
  const [ns, namespace, sa, serviceAccount, ...extra] = id.segments;
  if (ns !== 'ns' || sa !== 'sa' || namespace === undefined || serviceAccount === undefined) return undefined;
  if (extra.length > 0) return undefined;
  return Object.freeze({ namespace, serviceAccount });
}

export function isMemberOf(id: SpiffeId, trustDomain: string): boolean {
  return id.trustDomain === trustDomain;
}
