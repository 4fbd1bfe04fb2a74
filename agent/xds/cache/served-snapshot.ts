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
  /** The last snapshot served: a kind with the very same versions map (makeSnapshot took it over) keeps its served map. */
  private last: ServedSnapshot | undefined;

  /** Encodes a snapshot, reusing the encodings (and served entries) of unchanged resources; throws MESH_E_XDS_SNAPSHOT_INVALID. */
  serve(snapshot: Snapshot): ServedSnapshot {
    const next = new Map<ResourceKind, Map<string, ServedResource>>();
    const byKind = {} as { [K in ResourceKind]: Map<string, ServedResource> };
    for (const type of XDS_TYPES) {
      const before = this.cache.get(type.kind);
      const last = this.last;
      if (last !== undefined && before !== undefined && last.snapshot.versions[type.kind] === snapshot.versions[type.kind]) {
        next.set(type.kind, before);
        byKind[type.kind] = last.byKind[type.kind] as Map<string, ServedResource>;
        continue;
      }
      const served = new Map<string, ServedResource>();
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
    this.last = { version: snapshot.version, snapshot, byKind };
    return this.last;
  }
}
