/**
 * The names the catalog sync writes and reads: annotations users put on their
 * Services, the ownership labels and meta on what the sync creates, the
 * policy actor it applies ServiceIdentity resources as. They are an API
 * (operators select on them): never rename one.
 */

/** On a Service: "true" syncs it from any namespace, "false" keeps it out of an allowed namespace. */
export const ANNOTATION_SYNC = 'vm-mesh.io/sync';
/** On a Service: the Consul service name (default: the Service's name). */
export const ANNOTATION_SERVICE_NAME = 'vm-mesh.io/service-name';
/** On a Service: the pods' mesh (Envoy inbound) port, a number, when no port is named as `toConsul.meshPortName`. */
export const ANNOTATION_MESH_PORT = 'vm-mesh.io/mesh-port';
/** On a Service: the mesh protocol (http, http2, grpc, tcp); default the app port's appProtocol, else tcp. */
export const ANNOTATION_PROTOCOL = 'vm-mesh.io/protocol';

/** Ownership of the Services and EndpointSlices the sync creates (Consul -> Kubernetes). */
export const LABEL_MANAGED_BY = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'vm-mesh-k8s-sync';
/** Which cluster's sync created an object (two control planes never fight over one). */
export const LABEL_CLUSTER = 'vm-mesh.io/sync-cluster';
/** The Consul service an object mirrors. */
export const LABEL_CONSUL_SERVICE = 'vm-mesh.io/consul-service';
/** EndpointSlice controller label (discovery.k8s.io): ours, so kube-controller-manager leaves the slices alone. */
export const LABEL_SLICE_MANAGED_BY = 'endpointslice.kubernetes.io/managed-by';
export const SLICE_MANAGER = 'k8s-sync.vm-mesh.io';
export const LABEL_SERVICE_NAME = 'kubernetes.io/service-name';

/** Service meta on the Consul registrations the sync creates (Kubernetes -> Consul), as consul-k8s marks its own. */
export const META_EXTERNAL_SOURCE = 'external-source';
export const EXTERNAL_SOURCE = 'kubernetes';
export const META_K8S_NAMESPACE = 'external-k8s-ns';
export const META_K8S_SERVICE = 'external-k8s-name';
export const META_K8S_CLUSTER = 'external-k8s-cluster';
/** Node meta of the synthetic node. */
export const NODE_META_SYNC = 'mesh-k8s-sync';

/** The policy actor (updatedBy, audit) of the ServiceIdentity resources the sync keeps. */
export function syncActor(cluster: string): string {
  return `k8s-sync:${cluster}`;
}

/** The synthetic Consul node of a cluster's services. */
export function syncNodeName(cluster: string, configured?: string): string {
  return configured ?? `k8s-${cluster}`;
}
