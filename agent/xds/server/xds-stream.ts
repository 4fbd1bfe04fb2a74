/**
 * What the state-of-the-world and delta streams share, and nothing of their
 * protocol rules (those are in sotw-stream.ts and delta-stream.ts): the node
 * id (learned from the first request that names it; the server then watches
 * that node in the snapshot cache), the per-type state lookup, the nonce
 * counter, the update loop in make-before-break order, the bookkeeping of
 * sends, ACKs (with the acknowledged resources) and NACKs, and status().
 */
import type { AckedResources } from '../cache/acked-resources.js';
import type { ServedResource, ServedSnapshot } from '../cache/served-snapshot.js';
import type { SnapshotWatch } from '../cache/snapshot-cache.js';
import type { ResourceKind } from '../snapshot.js';
import { XDS_TYPES, type XdsType, xdsType } from '../xds-types.js';
import type { NackRecord, StreamHooks, StreamStatus, StreamTypeStatus } from './stream-status.js';
import type { PeerNode } from './wire.js';

/** Per type, what both protocols keep. */
export interface TypeStateBase {
  readonly type: XdsType;
  names: Set<string>;
  sentVersion?: string;
  sentNonce?: string;
  ackedVersion?: string;
  /** Name -> resource version Envoy acknowledged (replaced, never changed in place). */
  acked: ReadonlyMap<string, string>;
  lastNack?: NackRecord;
  /** The served map of this type at the latest update(): a new snapshot that kept it (same object) has nothing new for the type. */
  seen?: ReadonlyMap<string, ServedResource>;
}

const NONE: ReadonlyMap<string, string> = new Map();

export abstract class XdsStream<S extends TypeStateBase, R extends { readonly node: PeerNode | undefined; readonly typeUrl: string }>
  implements SnapshotWatch
{
  protected readonly states = new Map<string, S>();
  /** The node's latest snapshot, from the cache; undefined until it has one. */
  protected served: ServedSnapshot | undefined;
  private nonceCounter = 0;
  private node = '';
  private readonly connectedAt: number;

  constructor(
    readonly id: number,
    readonly api: 'sotw' | 'delta',
    protected readonly hooks: StreamHooks,
  ) {
    this.connectedAt = hooks.now();
  }

  get nodeId(): string {
    return this.node;
  }

  /** Handles one request; returns false for an unknown type URL. */
  request(req: R): boolean {
    const node = req.node?.id ?? '';
    if (node !== '' && node !== this.node) {
      if (this.node !== '') this.served = undefined; // another node's snapshot is not this one's
      this.node = node;
      this.hooks.onNode(node);
    }
    const type = xdsType(req.typeUrl);
    if (type === undefined) return false;
    let st = this.states.get(type.typeUrl);
    if (st === undefined) {
      st = this.createState(type, req);
      this.states.set(type.typeUrl, st);
    }
    this.handle(st, req);
    return true;
  }

  /** A new snapshot of the node: each type answers what changed for it, in make-before-break order. */
  update(served: ServedSnapshot): void {
    this.served = served;
    for (const type of XDS_TYPES) {
      const st = this.states.get(type.typeUrl);
      if (st === undefined) continue;
      // The type's resources are the very map of the last update: what changed since (subscriptions, ACKs) was
      // answered when it arrived, so only a protocol's own pending send (mustRespond) is left to do.
      const map = served.byKind[type.kind];
      if (st.seen === map && !this.mustRespond(st)) continue;
      st.seen = map;
      this.respond(st);
    }
  }

  acked(): AckedResources {
    const out = {} as { [K in ResourceKind]: ReadonlyMap<string, string> };
    for (const type of XDS_TYPES) out[type.kind] = this.states.get(type.typeUrl)?.acked ?? NONE;
    return out;
  }

  status(): StreamStatus {
    return {
      id: this.id,
      api: this.api,
      node: this.node,
      connectedAt: this.connectedAt,
      types: XDS_TYPES.flatMap((type): StreamTypeStatus[] => {
        const st = this.states.get(type.typeUrl);
        if (st === undefined) return [];
        return [
          {
            type: type.short,
            subscribed: type.wildcard ? '*' : [...st.names].sort(),
            ...(st.sentVersion === undefined ? {} : { sentVersion: st.sentVersion }),
            ...(st.sentNonce === undefined ? {} : { sentNonce: st.sentNonce }),
            ...(st.ackedVersion === undefined ? {} : { ackedVersion: st.ackedVersion }),
            ...(st.lastNack === undefined ? {} : { lastNack: st.lastNack }),
            resources: this.held(st),
            pending: this.pending(st),
          },
        ];
      }),
    };
  }

  protected nextNonce(): string {
    return String(++this.nonceCounter);
  }

  /** Records a response as sent and hands it to the server. */
  protected pushed(st: S, bytes: Buffer, info: { version: string; nonce: string; resources: number; removed: number }): void {
    st.sentVersion = info.version;
    st.sentNonce = info.nonce;
    this.hooks.send(bytes, { type: st.type.short, ...info });
  }

  /** An ACK: the acknowledged set is replaced first, then the server is told (its listeners read the new set). */
  protected acknowledge(st: S, version: string, acked: ReadonlyMap<string, string>): void {
    st.ackedVersion = version;
    st.acked = acked;
    this.hooks.onAck(st.type.short, version, this.node);
  }

  /** A NACK (error_detail set): recorded; the acknowledged set stays (Envoy keeps its previous config). */
  protected reject(st: S, nack: { version: string; nonce: string; detail: string; resources?: readonly string[] }): void {
    st.lastNack = {
      type: st.type.short,
      version: nack.version,
      nonce: nack.nonce,
      detail: nack.detail,
      at: this.hooks.now(),
      node: this.node,
      ...(nack.resources === undefined ? {} : { resources: nack.resources }),
    };
    this.hooks.onNack(st.lastNack);
  }

  /** A new per-type state for the first request of a type. */
  protected abstract createState(type: XdsType, req: R): S;
  /** The protocol's rules for one request of a type (subscriptions, ACK/NACK, stale nonces), then an answer if due. */
  protected abstract handle(st: S, req: R): void;
  /** Something must go out for the type even if its resources did not change (SotW: a dependency changed). */
  protected mustRespond(_st: S): boolean {
    return false;
  }
  /** Sends what is new for the type, if the protocol allows it now. */
  protected abstract respond(st: S): void;
  /** Resources Envoy holds as far as the stream knows. */
  protected abstract held(st: S): number;
  /** SotW: a request is open. Delta: responses not yet acknowledged. */
  protected abstract pending(st: S): number;
}

/** A type state's fields both protocols start with. */
export function baseTypeState(type: XdsType): TypeStateBase {
  return { type, names: new Set(), acked: NONE };
}
