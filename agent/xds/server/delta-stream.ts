/**
 * One incremental (delta) ADS stream. Per type it keeps the subscribed names
 * (LDS and CDS are wildcard), the version of each resource Envoy holds as far
 * as the server knows (from what was sent, or from initial_resource_versions
 * on a reconnect), and the responses not yet acknowledged. It sends only
 * resources whose version differs, plus explicit removed_resources.
 *
 * A NACK leaves the rejected versions recorded as sent, so they are not sent
 * again; the next change of those resources is. Acknowledgements for unknown
 * nonces are stale and ignored (subscription changes in them still count).
 * After a cluster (or listener) changed, its endpoints (or the routes) and the
 * secrets are sent again, so a re-created resource does not stay warming.
 */
import type { ServedSnapshot } from '../cache/served-snapshot.js';
import { dependentKinds, XDS_TYPES, type XdsType, xdsType } from '../xds-types.js';
import type { NackRecord, StreamHooks, StreamStatus, StreamTypeStatus } from './stream-status.js';
import { type DeltaRequest, encodeDeltaResponse } from './wire.js';

/** Unacknowledged responses remembered per type. */
const MAX_OUTSTANDING = 64;

interface Outstanding {
  readonly version: string;
  readonly names: readonly string[];
}

interface TypeState {
  readonly type: XdsType;
  names: Set<string>;
  /** Resource name -> version Envoy holds (as far as we know). */
  known: Map<string, string>;
  started: boolean;
  outstanding: Map<string, Outstanding>;
  sentVersion?: string;
  sentNonce?: string;
  ackedVersion?: string;
  lastNack?: NackRecord;
}

export class DeltaStream {
  private readonly states = new Map<string, TypeState>();
  private nonceCounter = 0;
  private node = '';
  private served: ServedSnapshot | undefined;
  private readonly connectedAt: number;

  constructor(
    readonly id: number,
    private readonly hooks: StreamHooks,
  ) {
    this.connectedAt = hooks.now();
  }

  get nodeId(): string {
    return this.node;
  }

  request(req: DeltaRequest, served: ServedSnapshot | undefined): boolean {
    if (req.node !== undefined && req.node.id !== '') this.node = req.node.id;
    this.served = served;
    const type = xdsType(req.typeUrl);
    if (type === undefined) return false;
    let st = this.states.get(type.typeUrl);
    if (st === undefined) {
      st = { type, names: new Set(), known: new Map(Object.entries(req.initialVersions)), started: false, outstanding: new Map() };
      this.states.set(type.typeUrl, st);
    }
    if (!type.wildcard) {
      for (const name of req.subscribe) st.names.add(name);
      for (const name of req.unsubscribe) {
        st.names.delete(name);
        st.known.delete(name);
      }
    }
    if (req.responseNonce !== '') {
      const answered = st.outstanding.get(req.responseNonce);
      if (answered !== undefined) {
        st.outstanding.delete(req.responseNonce);
        if (req.errorDetail !== undefined) {
          st.lastNack = {
            type: type.short,
            version: answered.version,
            nonce: req.responseNonce,
            detail: req.errorDetail.message,
            at: this.hooks.now(),
            node: this.node,
            resources: answered.names,
          };
          this.hooks.onNack(st.lastNack);
        } else {
          st.ackedVersion = answered.version;
          this.hooks.onAck(type.short, answered.version);
        }
      }
    }
    this.respond(st);
    return true;
  }

  update(served: ServedSnapshot): void {
    this.served = served;
    for (const type of XDS_TYPES) {
      const st = this.states.get(type.typeUrl);
      if (st !== undefined) this.respond(st);
    }
  }

  private respond(st: TypeState): void {
    const served = this.served;
    if (served === undefined) return;
    const all = served.byKind[st.type.kind];
    const wanted = st.type.wildcard ? [...all.keys()] : [...st.names].filter((n) => all.has(n));
    const changed = wanted
      .sort()
      .map((name) => all.get(name))
      .filter((r) => r !== undefined && st.known.get(r.name) !== r.version) as Array<NonNullable<ReturnType<typeof all.get>>>;
    const removed = [...st.known.keys()].filter((name) => !all.has(name) && (st.type.wildcard || st.names.has(name))).sort();
    if (changed.length === 0 && removed.length === 0 && st.started) return;
    st.started = true;
    const nonce = String(++this.nonceCounter);
    const modified = changed.some((r) => st.known.has(r.name)) || removed.length > 0;
    for (const r of changed) st.known.set(r.name, r.version);
    for (const name of removed) st.known.delete(name);
    st.outstanding.set(nonce, { version: served.version, names: changed.map((r) => r.name) });
    // A client that stops answering must not grow this without bound; the oldest are stale anyway.
    if (st.outstanding.size > MAX_OUTSTANDING) st.outstanding.delete(st.outstanding.keys().next().value as string);
    st.sentVersion = served.version;
    st.sentNonce = nonce;
    const bytes = encodeDeltaResponse({
      systemVersionInfo: served.version,
      resources: changed.map((r) => ({ name: r.name, version: r.version, resource: r.any })),
      typeUrl: st.type.typeUrl,
      removed,
      nonce,
    });
    this.hooks.send(bytes, { type: st.type.short, version: served.version, resources: changed.length, removed: removed.length, nonce });
    if (modified) {
      for (const kind of dependentKinds(st.type.kind)) {
        for (const other of this.states.values()) {
          if (other.type.kind !== kind) continue;
          other.known.clear();
          this.respond(other);
        }
      }
    }
  }

  status(): StreamStatus {
    return {
      id: this.id,
      api: 'delta',
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
            resources: st.known.size,
            pending: st.outstanding.size,
          },
        ];
      }),
    };
  }
}
