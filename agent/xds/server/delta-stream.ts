/**
 * One incremental (delta) ADS stream: the protocol's rules; what it shares
 * with the SotW stream is in xds-stream.ts. Per type it keeps, besides the
 * shared state: the version of each resource Envoy holds as far as the server
 * knows (from what was sent, or from initial_resource_versions on a
 * reconnect), and the responses not yet acknowledged. It sends only resources
 * whose version differs, plus explicit removed_resources. LDS and CDS are
 * wildcard.
 *
 * A NACK leaves the rejected versions recorded as sent, so they are not sent
 * again; the next change of those resources is. Acknowledgements for unknown
 * nonces are stale and ignored (subscription changes in them still count).
 * An ACK gives the resources of that response their versions in the acked
 * set and takes its removals out; an unsubscribed name leaves it too. The
 * first response of a type on a stream also stands for what Envoy said it
 * holds (initial_resource_versions): its ACK acknowledges those as well, so
 * an unchanged listener is acknowledged again after a reconnect.
 * After a cluster (or listener) changed, its endpoints (or the routes) and the
 * secrets are sent again, so a re-created resource does not stay warming.
 */
import { withAcked } from '../cache/acked-resources.js';
import type { ServedResource } from '../cache/served-snapshot.js';
import { dependentKinds, type XdsType } from '../xds-types.js';
import type { StreamHooks } from './stream-status.js';
import { type DeltaRequest, encodeDeltaResponse } from './wire.js';
import { baseTypeState, type TypeStateBase, XdsStream } from './xds-stream.js';

/** Unacknowledged responses remembered per type. */
const MAX_OUTSTANDING = 64;

interface Outstanding {
  readonly version: string;
  /** The resources in the response (a NACK names them). */
  readonly names: readonly string[];
  /** Name -> version Envoy holds once it applied the response: acknowledged by its ACK. */
  readonly holds: ReadonlyMap<string, string>;
  readonly removed: readonly string[];
}

interface DeltaTypeState extends TypeStateBase {
  /** Resource name -> version Envoy holds (as far as we know). */
  known: Map<string, string>;
  started: boolean;
  outstanding: Map<string, Outstanding>;
}

const byName = (a: ServedResource, b: ServedResource): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

export class DeltaStream extends XdsStream<DeltaTypeState, DeltaRequest> {
  constructor(id: number, hooks: StreamHooks) {
    super(id, 'delta', hooks);
  }

  protected createState(type: XdsType, req: DeltaRequest): DeltaTypeState {
    return { ...baseTypeState(type), known: new Map(Object.entries(req.initialVersions)), started: false, outstanding: new Map() };
  }

  protected handle(st: DeltaTypeState, req: DeltaRequest): void {
    if (!st.type.wildcard) {
      for (const name of req.subscribe) st.names.add(name);
      for (const name of req.unsubscribe) {
        st.names.delete(name);
        st.known.delete(name);
      }
      if (req.unsubscribe.length > 0) st.acked = withAcked(st.acked, new Map(), req.unsubscribe);
    }
    const answered = req.responseNonce === '' ? undefined : st.outstanding.get(req.responseNonce);
    if (answered !== undefined) {
      st.outstanding.delete(req.responseNonce);
      if (req.errorDetail !== undefined) {
        this.reject(st, {
          version: answered.version,
          nonce: req.responseNonce,
          detail: req.errorDetail.message,
          resources: answered.names,
        });
      } else {
        this.acknowledge(st, answered.version, withAcked(st.acked, answered.holds, answered.removed));
      }
    }
    this.respond(st);
  }

  protected respond(st: DeltaTypeState): void {
    const served = this.served;
    if (served === undefined) return;
    const all = served.byKind[st.type.kind];
    // Only what changed is collected and sorted (one endpoint change: one name, not 200).
    const changed: ServedResource[] = [];
    if (st.type.wildcard) {
      for (const r of all.values()) if (st.known.get(r.name) !== r.version) changed.push(r);
    } else {
      for (const name of st.names) {
        const r = all.get(name);
        if (r !== undefined && st.known.get(name) !== r.version) changed.push(r);
      }
    }
    changed.sort(byName);
    const removed: string[] = [];
    for (const name of st.known.keys()) if (!all.has(name) && (st.type.wildcard || st.names.has(name))) removed.push(name);
    removed.sort();
    if (changed.length === 0 && removed.length === 0 && st.started) return;
    const first = !st.started;
    st.started = true;
    const nonce = this.nextNonce();
    const modified = changed.some((r) => st.known.has(r.name)) || removed.length > 0;
    for (const r of changed) st.known.set(r.name, r.version);
    for (const name of removed) st.known.delete(name);
    const names = changed.map((r) => r.name);
    const holds = first ? new Map(st.known) : new Map(changed.map((r) => [r.name, r.version]));
    st.outstanding.set(nonce, { version: served.version, names, holds, removed });
    // A client that stops answering must not grow this without bound; the oldest are stale anyway.
    if (st.outstanding.size > MAX_OUTSTANDING) st.outstanding.delete(st.outstanding.keys().next().value as string);
    const bytes = encodeDeltaResponse({
      systemVersionInfo: served.version,
      resources: changed.map((r) => ({ name: r.name, version: r.version, resource: r.any })),
      typeUrl: st.type.typeUrl,
      removed,
      nonce,
    });
    this.pushed(st, bytes, { version: served.version, resources: changed.length, removed: removed.length, nonce });
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

  protected held(st: DeltaTypeState): number {
    return st.known.size;
  }

  protected pending(st: DeltaTypeState): number {
    return st.outstanding.size;
  }
}
