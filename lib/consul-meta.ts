/**
 * The Consul service meta keys the mesh writes and reads: a contract between
 * every agent (registration writes them, the catalog watch reads them) and,
 * later, the control plane's catalog sync. Keys are never renamed.
 */
export const META = Object.freeze({
  spiffeId: 'mesh_spiffe_id',
  protocol: 'mesh_protocol',
  meshPort: 'mesh_port',
  node: 'mesh_node',
  zone: 'mesh_zone',
});

/** Meta keys with this prefix are the mesh's; workload files may not set them. */
export const META_PREFIX = 'mesh_';
