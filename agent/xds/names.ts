/**
 * Resource names are an API: they appear in Envoy stats (`cluster.<name>.*`,
 * `listener.<address>.*` stat prefixes), admin output and dashboards. Never
 * rename one without a migration note.
 *
 * | resource                       | name                              | example                         |
 * |--------------------------------|-----------------------------------|---------------------------------|
 * | inbound listener               | `inbound:<workload>`              | `inbound:web`                   |
 * | inbound route config (inline)  | `inbound:<workload>`              | `inbound:web`                   |
 * | local app cluster              | `inbound:<workload>:app`          | `inbound:web:app`               |
 * | outbound listener              | `outbound:<service>:<localPort>`  | `outbound:api:9001`             |
 * | outbound cluster (EDS)         | `outbound:<service>`              | `outbound:api`                  |
 * | ClusterLoadAssignment          | same as its cluster               | `outbound:api`                  |
 * | outbound route config (RDS)    | `outbound:<service>`              | `outbound:api`                  |
 * | SDS identity secret            | the workload's SPIFFE ID          | `spiffe://example.org/ns/default/sa/web` |
 * | SDS trust bundle               | `ROOTCA`                          | `ROOTCA`                        |
 *
 * Route configs and clusters are keyed by service, not port, so a future
 * transparent-proxy virtual listener can reference the same ones. `ROOTCA`
 * follows Istio's SDS convention. Stat prefixes are the names with every
 * character outside [A-Za-z0-9_] replaced by `_`.
 */

export const TRUST_BUNDLE_SECRET_NAME = 'ROOTCA';

export function inboundListenerName(workload: string): string {
  return `inbound:${workload}`;
}

export function inboundRouteName(workload: string): string {
  return `inbound:${workload}`;
}

export function localAppClusterName(workload: string): string {
  return `inbound:${workload}:app`;
}

export function outboundListenerName(service: string, localPort: number): string {
  return `outbound:${service}:${localPort}`;
}

export function outboundClusterName(service: string): string {
  return `outbound:${service}`;
}

export function outboundRouteName(service: string): string {
  return `outbound:${service}`;
}

/** The SDS secret holding a workload's certificate chain and key. */
export function identitySecretName(spiffeId: string): string {
  return spiffeId;
}

/** A stat prefix derived from a resource name. */
export function statPrefix(name: string): string {
  return name.replace(/[^A-Za-z0-9_]/g, '_');
}
