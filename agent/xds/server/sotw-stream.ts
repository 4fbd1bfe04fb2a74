/**
 * One state-of-the-world ADS stream: the protocol's rules; what it shares with
 * the delta stream is in xds-stream.ts. Per type it keeps, besides the shared
 * state: whether a request is open, the set last sent, the nonce last
 * answered and the versions Envoy rejected. Rules (xds-protocol.md):
 * - a request whose response_nonce is not the latest sent for its type is
 *   stale and ignored;
 * - a request is answered only when there is something new for it;
 * - a NACK (error_detail set) is recorded and the rejected version is never
 *   sent again; the next different content is;
 * - an ACK makes the set sent in the acknowledged response the acked set;
 * - LDS and CDS carry the full set; EDS, RDS and SDS carry the requested
 *   names that exist and changed since the previous response of the type (a
 *   name left out is not deleted: "grouping resources into responses" of the
 *   xDS protocol), so one changed endpoint costs one ClusterLoadAssignment,
 *   not all of them; the first response of a type carries them all;
 * - an ACK makes the set of the acknowledged response the acked set (LDS,
 *   CDS), or adds the resources of that response to it (EDS, RDS, SDS; names
 *   no longer requested leave it);
 * - after clusters (or listeners) changed, endpoints (or routes) and secrets
 *   are sent again, all of them even if unchanged, so re-created resources do
 *   not stay warming.
 */
import { entriesHash } from '../../../lib/stable-json.js';
import type { ServedResource } from '../cache/served-snapshot.js';
import { dependentKinds, type XdsType } from '../xds-types.js';
import type { StreamHooks } from './stream-status.js';
import { encodeSotwResponse, type SotwRequest } from './wire.js';
import { baseTypeState, type TypeStateBase, XdsStream } from './xds-stream.js';

interface SotwTypeState extends TypeStateBase {
  /** A request is open: the next new content goes out at once. */
  waiting: boolean;
  /** Name -> version of what Envoy holds once it applied the latest response (LDS, CDS: the resources in it). */
  sent?: ReadonlyMap<string, string>;
  /** Name -> version of the resources in the latest response (EDS, RDS, SDS: the changed ones). */
  wire?: ReadonlyMap<string, string>;
  /** The nonce of the latest response answered (ACK or NACK), so each is counted once. */
  answeredNonce?: string;
  /** Send even if the content did not change (a dependency changed). */
  forced: boolean;
  rejected: string[];
}

const MAX_REJECTED = 16;

export function sotwVersion(content: readonly ServedResource[]): string {
  return entriesHash(content.map((r) => ['', r.name, r.version])).slice(0, 16);
}

export class SotwStream extends XdsStream<SotwTypeState, SotwRequest> {
  constructor(id: number, hooks: StreamHooks) {
    super(id, 'sotw', hooks);
  }

  protected createState(type: XdsType): SotwTypeState {
    return { ...baseTypeState(type), waiting: false, forced: false, rejected: [] };
  }

  protected handle(st: SotwTypeState, req: SotwRequest): void {
    if (st.sentNonce !== undefined && req.responseNonce !== st.sentNonce) return; // stale
    st.names = new Set(req.resourceNames.filter((n) => n !== '*'));
    if (st.sentNonce !== undefined && st.answeredNonce !== st.sentNonce) {
      st.answeredNonce = st.sentNonce;
      const version = st.sentVersion ?? '';
      if (req.errorDetail !== undefined) {
        st.rejected = [...st.rejected.filter((v) => v !== version), version].slice(-MAX_REJECTED);
        this.reject(st, { version, nonce: st.sentNonce, detail: req.errorDetail.message });
      } else {
        this.acknowledge(st, version, st.type.wildcard ? (st.sent ?? new Map()) : ackedPart(st.acked, st.wire ?? new Map(), st.names));
      }
    }
    st.waiting = true;
    this.respond(st);
  }

  private content(st: SotwTypeState): ServedResource[] {
    const all = this.served?.byKind[st.type.kind];
    if (all === undefined) return [];
    if (st.type.wildcard) return [...all.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
    const out: ServedResource[] = [];
    for (const name of [...st.names].sort()) {
      const r = all.get(name);
      if (r !== undefined) out.push(r);
    }
    return out;
  }

  protected override mustRespond(st: SotwTypeState): boolean {
    return st.forced;
  }

  protected respond(st: SotwTypeState): void {
    if (!st.waiting || this.served === undefined) return;
    const content = this.content(st);
    const version = sotwVersion(content);
    if (!st.forced && (version === st.sentVersion || st.rejected.includes(version))) return;
    const previous = st.sent;
    const resources =
      st.type.wildcard || st.forced || previous === undefined ? content : content.filter((r) => previous.get(r.name) !== r.version);
    st.forced = false;
    st.waiting = false;
    const nonce = this.nextNonce();
    st.sent = new Map(content.map((r) => [r.name, r.version]));
    st.wire = new Map(resources.map((r) => [r.name, r.version]));
    const bytes = encodeSotwResponse({
      versionInfo: version,
      resources: resources.map((r) => r.any),
      typeUrl: st.type.typeUrl,
      nonce,
    });
    this.pushed(st, bytes, { version, resources: resources.length, removed: 0, nonce });
    if (previous !== undefined && changedNames(previous, st.sent)) {
      for (const kind of dependentKinds(st.type.kind)) {
        for (const other of this.states.values()) if (other.type.kind === kind) other.forced = true;
      }
    }
  }

  protected held(st: SotwTypeState): number {
    return st.sent?.size ?? 0;
  }

  protected pending(st: SotwTypeState): number {
    return st.waiting ? 1 : 0;
  }
}

/** EDS, RDS, SDS: the acked set after an ACK of a response carrying `wire`, for the names still requested. */
function ackedPart(
  acked: ReadonlyMap<string, string>,
  wire: ReadonlyMap<string, string>,
  requested: ReadonlySet<string>,
): ReadonlyMap<string, string> {
  const next = new Map([...acked].filter(([name]) => requested.has(name)));
  for (const [name, version] of wire) if (requested.has(name)) next.set(name, version);
  return next;
}

/** True when a resource was added, changed or removed between two sent sets. */
function changedNames(before: ReadonlyMap<string, string>, after: ReadonlyMap<string, string>): boolean {
  if (before.size !== after.size) return true;
  for (const [name, version] of after) if (before.get(name) !== version) return true;
  return false;
}
