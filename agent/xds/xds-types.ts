/**
 * The five xDS types the agent serves, how they map to snapshot kinds, and the
 * order pushes go out in: clusters, endpoints, listeners, routes, secrets
 * (make before break: a listener is sent after the clusters it routes to).
 *
 * Wildcard types (LDS, CDS) always carry the full set; the others carry only
 * the names Envoy asked for.
 */
import { TypeUrl, type XdsTypeUrl } from '../../lib/envoy/type-urls.js';
import type { ResourceKind } from './snapshot.js';

export interface XdsType {
  readonly typeUrl: XdsTypeUrl;
  readonly kind: ResourceKind;
  /** LDS, CDS, EDS, RDS, SDS: for logs and status. */
  readonly short: string;
  readonly wildcard: boolean;
}

export const XDS_TYPES: readonly XdsType[] = Object.freeze([
  { typeUrl: TypeUrl.Cluster, kind: 'clusters', short: 'CDS', wildcard: true },
  { typeUrl: TypeUrl.ClusterLoadAssignment, kind: 'endpoints', short: 'EDS', wildcard: false },
  { typeUrl: TypeUrl.Listener, kind: 'listeners', short: 'LDS', wildcard: true },
  { typeUrl: TypeUrl.RouteConfiguration, kind: 'routes', short: 'RDS', wildcard: false },
  { typeUrl: TypeUrl.Secret, kind: 'secrets', short: 'SDS', wildcard: false },
] as const);

const byUrl = new Map<string, XdsType>(XDS_TYPES.map((t) => [t.typeUrl, t]));

export function xdsType(typeUrl: string): XdsType | undefined {
  return byUrl.get(typeUrl);
}

/**
 * Types whose resources must be sent again when a resource of `changed` kind
 * changed, even if their own content did not: Envoy re-creates a changed
 * cluster and waits for its endpoints (it would stay warming forever), and a
 * re-created listener or cluster may subscribe to its routes and secrets anew.
 */
export function dependentKinds(changed: ResourceKind): readonly ResourceKind[] {
  if (changed === 'clusters') return ['endpoints', 'secrets'];
  if (changed === 'listeners') return ['routes', 'secrets'];
  return [];
}
