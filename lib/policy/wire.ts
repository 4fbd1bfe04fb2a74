/** mesh.controlplane.v1.PolicyResource as grpc-js carries it (proto field names, uint64 as number). */
export interface PolicyResourceWire {
  kind: string;
  name: string;
  version: number;
  revision: number;
  /** The document as applied, JSON text. */
  json: string;
  updated_at_ms: number;
  updated_by: string;
}
