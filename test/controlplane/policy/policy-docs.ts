/** Policy documents for the distribution tests: one of each kind, aimed at given services or identities. */
export const TD = 'spiffe://example.org';

export function serviceIdentity(name: string, service: string, ids: string[] = [`${TD}/ns/default/sa/${service}`]) {
  return { apiVersion: 'mesh.v1', kind: 'ServiceIdentity', metadata: { name }, spec: { service, allowedIdentities: ids } };
}

export function trafficRoute(name: string, service: string, mirror?: string) {
  return {
    apiVersion: 'mesh.v1',
    kind: 'TrafficRoute',
    metadata: { name },
    spec: {
      service,
      http: [
        {
          name: 'all',
          destinations: [{ weight: 1 }],
          timeout: '2s',
          ...(mirror === undefined ? {} : { mirror: { service: mirror, percent: 10 } }),
        },
      ],
    },
  };
}

export function trafficPolicy(name: string, service: string, connectTimeout = '1s') {
  return { apiVersion: 'mesh.v1', kind: 'TrafficPolicy', metadata: { name }, spec: { service, connectTimeout } };
}

export function authorization(name: string, target: { service?: string; spiffeId?: string }) {
  return {
    apiVersion: 'mesh.v1',
    kind: 'AuthorizationPolicy',
    metadata: { name },
    spec: { target, defaultAction: 'deny', rules: [{ name: 'web', action: 'allow', from: { ids: [`${TD}/ns/default/sa/web`] } }] },
  };
}

export function peerAuthentication(name: string, target: { service?: string; spiffeId?: string }) {
  return { apiVersion: 'mesh.v1', kind: 'PeerAuthentication', metadata: { name }, spec: { target, mode: 'permissive' } };
}

export function rateLimit(name: string, target: { service?: string; spiffeId?: string }, requestsPerSecond = 10) {
  return { apiVersion: 'mesh.v1', kind: 'RateLimit', metadata: { name }, spec: { target, requestsPerSecond } };
}

export function meshTelemetry(name: string, tracing: Record<string, unknown> = { provider: 'zipkin', address: '127.0.0.1:9411' }) {
  return { apiVersion: 'mesh.v1', kind: 'MeshTelemetry', metadata: { name }, spec: { tracing } };
}
