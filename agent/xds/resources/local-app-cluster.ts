/** The STATIC cluster from the inbound listener to the workload's app on 127.0.0.1. */
import type { ModelWorkload } from '../../model/proxy-model.js';
import { isHttp2 } from '../../model/proxy-model.js';
import { localAppClusterName } from '../names.js';
import { CONNECT_TIMEOUT, http2ProtocolOptions, socketAddress, type XdsResource } from './common.js';

export function buildLocalAppCluster(workload: ModelWorkload): XdsResource {
  const name = localAppClusterName(workload.name);
  const cluster: XdsResource = {
    name,
    type: 'STATIC',
    connect_timeout: CONNECT_TIMEOUT,
    load_assignment: {
      cluster_name: name,
      endpoints: [{ lb_endpoints: [{ endpoint: { address: socketAddress('127.0.0.1', workload.appPort) } }] }],
    },
  };
  if (isHttp2(workload.protocol)) cluster.typed_extension_protocol_options = http2ProtocolOptions();
  return cluster;
}
