/**
 * The smallest mesh a data-plane test needs: workloads web and api behind one
 * Envoy, web calling api through a local port. One definition for every test
 * that drives a real Envoy with it.
 */
import type { ProxyModel } from '../../agent/model/proxy-model.js';

export interface WebApiPorts {
  /** The local apps' ports. */
  webApp: number;
  apiApp: number;
  /** The mesh (mTLS) listeners of web and api. */
  webMesh: number;
  apiMesh: number;
  /** web's local port for the upstream api. */
  local: number;
}

export function webApiModel(trustDomain: string, ports: WebApiPorts, node = 'vm-1'): ProxyModel {
  const web = `spiffe://${trustDomain}/ns/default/sa/web`;
  const api = `spiffe://${trustDomain}/ns/default/sa/api`;
  return {
    node: { name: node },
    trustDomain,
    workloads: [
      { name: 'web', protocol: 'http', appPort: ports.webApp, meshPort: ports.webMesh, spiffeId: web },
      { name: 'api', protocol: 'http', appPort: ports.apiApp, meshPort: ports.apiMesh, spiffeId: api },
    ],
    upstreams: [
      {
        service: 'api',
        localPort: ports.local,
        protocol: 'http',
        workload: 'web',
        instances: [{ address: '127.0.0.1', meshPort: ports.apiMesh, spiffeId: api, weight: 1, healthy: true }],
        peerIds: [api],
      },
    ],
  };
}
