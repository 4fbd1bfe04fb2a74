/**
 * A snapshot ready to serve: every resource encoded once into its Any bytes.
 * Encodings are reused across snapshots by (kind, content version), so a new
 * snapshot costs only the resources that changed. A resource that does not
 * encode makes the whole snapshot unservable (the previous one stays).
 */
import { encodeMessage } from '../../../lib/envoy/protos.js';
import { MeshError } from '../../../lib/errors.js';
import type { ResourceKind, Snapshot } from '../snapshot.js';
import { XDS_TYPES } from '../xds-types.js';

/** A google.protobuf.Any whose value is already encoded: what the wire messages carry. */
export interface EncodedAny {
  readonly type_url: string;
  readonly value: Uint8Array;
}

export interface ServedResource {
  readonly name: string;
  readonly version: string;
  readonly any: EncodedAny;
}

export interface ServedSnapshot {
  readonly version: string;
  readonly snapshot: Snapshot;
  /** By kind: name -> encoded resource. */
  readonly byKind: { readonly [K in ResourceKind]: ReadonlyMap<string, ServedResource> };
}

export class SnapshotEncoder {
  /** By kind: content version -> the resource served at it in the previous snapshot. */
  private cache = new Map<ResourceKind, Map<string, ServedResource>>();

  /** Encodes a snapshot, reusing the encodings (and served entries) of unchanged resources; throws MESH_E_XDS_SNAPSHOT_INVALID. */
  serve(snapshot: Snapshot): ServedSnapshot {
    const next = new Map<ResourceKind, Map<string, ServedResource>>();
    const byKind = {} as { [K in ResourceKind]: Map<string, ServedResource> };
    for (const type of XDS_TYPES) {
      const served = new Map<string, ServedResource>();
      const before = this.cache.get(type.kind);
      const byVersion = new Map<string, ServedResource>();
      next.set(type.kind, byVersion);
      for (const [name, resource] of snapshot.resources[type.kind]) {
        const version = snapshot.versions[type.kind].get(name) ?? '';
        const known = byVersion.get(version) ?? before?.get(version);
        if (known !== undefined && known.name === name) {
          byVersion.set(version, known);
          served.set(name, known);
          continue;
        }
        let any = known?.any;
        if (any === undefined) {
          try {
            any = { type_url: type.typeUrl, value: encodeMessage(type.typeUrl, resource) };
          } catch (err) {
            throw new MeshError(
              'MESH_E_XDS_SNAPSHOT_INVALID',
              `${type.short} resource ${JSON.stringify(name)}: ${(err as Error).message}`,
              {
                cause: err,
              },
            );
          }
        }
        const entry = { name, version, any };
        byVersion.set(version, entry);
        served.set(name, entry);
      }
      byKind[type.kind] = served;
    }
    this.cache = next;
    return { version: snapshot.version, snapshot, byKind };
  }
}
