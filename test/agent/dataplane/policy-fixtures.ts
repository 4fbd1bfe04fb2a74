/**
 * What the data plane's policy tests share: workload web (calls api), a
 * catalog instance of api, and policy documents as a user writes them.
 */
import type { CatalogInstance } from '../../../agent/discovery/catalog-view.js';
import type { Workload } from '../../../agent/workloads/workload.js';

export const TD = 'example.org';
export const WEB = `spiffe://${TD}/ns/default/sa/web`;

/** Workload web on mesh port 18080, calling api on local port 9001. */
export const web: Workload = {
  file: '/w/web.yaml',
  name: 'web',
  port: 8080,
  meshPort: 18080,
  protocol: 'http',
  namespace: 'default',
  serviceAccount: 'web',
  spiffeId: WEB,
  tags: [],
  meta: {},
  weight: 1,
  check: undefined,
  upstreams: [{ service: 'api', localPort: 9001, namespace: 'default' }],
};

/** A healthy in-mesh instance of api with these tags and meta. */
export function apiInstance(id: string, tags: string[] = [], meta: Record<string, string> = {}): CatalogInstance {
  return {
    id,
    node: 'vm2',
    address: '127.0.0.2',
    appPort: 9000,
    meshPort: 19000,
    spiffeId: `spiffe://${TD}/ns/default/sa/api`,
    protocol: 'http',
    tags,
    meta,
    weight: 1,
    datacenter: 'dc1',
    zone: '',
    health: 'passing',
  };
}

/** A policy document as `meshctl policy apply` takes it. */
export const policyDoc = (kind: string, name: string, spec: unknown) => ({ apiVersion: 'mesh.v1', kind, metadata: { name }, spec });
