/** Policy documents for the control plane's policy tests (trust domain example.org). */

export const TD = 'example.org';

export function route(name: string, service: string, spec: Record<string, unknown> = {}) {
  return {
    apiVersion: 'mesh.v1',
    kind: 'TrafficRoute',
    metadata: { name },
    spec: {
      service,
      subsets: [
        { name: 'v1', tags: ['v1'] },
        { name: 'v2', meta: { version: 'v2' } },
      ],
      http: [
        {
          name: 'default',
          destinations: [
            { subset: 'v1', weight: 90 },
            { subset: 'v2', weight: 10 },
          ],
          timeout: '2s',
        },
      ],
      ...spec,
    },
  };
}

export function identity(name: string, service: string, ids: string[], namespace?: string) {
  return {
    apiVersion: 'mesh.v1',
    kind: 'ServiceIdentity',
    metadata: { name },
    spec: { service, ...(namespace ? { namespace } : {}), allowedIdentities: ids },
  };
}

export function authz(name: string, target: Record<string, string>, rules: unknown[] = []) {
  return { apiVersion: 'mesh.v1', kind: 'AuthorizationPolicy', metadata: { name }, spec: { target, defaultAction: 'deny', rules } };
}

export function peerAuth(name: string, service: string, mode = 'permissive') {
  return { apiVersion: 'mesh.v1', kind: 'PeerAuthentication', metadata: { name }, spec: { target: { service }, mode } };
}
