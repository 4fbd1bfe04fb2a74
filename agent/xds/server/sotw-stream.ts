/**
 * One state-of-the-world ADS stream. Per type it keeps: the subscribed names,
 * whether a request is open, the last sent nonce and version, the acked
 * version and the last NACK. Rules (xds-protocol.md):
 * - a request whose response_nonce is not the latest sent for its type is
 *   stale and ignored;
 * - a request is answered only when there is something new for it;
 * - a NACK (error_detail set) is recorded and the rejected version is never
 *   sent again; the next different content is;
 * - LDS and CDS carry the full set, EDS, RDS and SDS the requested names that
 *   exist;
 * - after clusters (or listeners) changed, endpoints (or routes) and secrets
 *   are sent again even if unchanged, so re-created resources do not stay
 *   warming.
 */
import { contentHash } from '../../../lib/stable-json.js';
import type { ServedResource, ServedSnapshot } from '../cache/served-snapshot.js';
import { dependentKinds, XDS_TYPES, type XdsType, xdsType } from '../xds-types.js';
import type { NackRecord, StreamHooks, StreamStatus, StreamTypeStatus } from './stream-status.js';
import { encodeSotwResponse, type SotwRequest } from './wire.js';

interface TypeState {
  readonly type: XdsType;
  names: Set<string>;
  /** A request is open: the next new content goes out at once. */
  waiting: boolean;
  nonce?: string;
  sent?: ReadonlyMap<string, string>;
  sentVersion?: string;
  ackedVersion?: string;
  /** The nonce of the latest response answered (ACK or NACK), so each is counted once. */
  answeredNonce?: string;
  /** Send even if the content did not change (a dependency changed). */
  forced: boolean;
  rejected: string[];
  lastNack?: NackRecord;
}

const MAX_REJECTED = 16;

export function sotwVersion(content: readonly ServedResource[]): string {
  return contentHash(content.map((r) => [r.name, r.version])).slice(0, 16);
}

export class SotwStream {
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

  /** Handles one DiscoveryRequest; returns false for an unknown type URL. */
  request(req: SotwRequest, served: ServedSnapshot | undefined): boolean {
    if (req.node !== undefined && req.node.id !== '') this.node = req.node.id;
    this.served = served;
    const type = xdsType(req.typeUrl);
    if (type === undefined) return false;
    let st = this.states.get(type.typeUrl);
    if (st === undefined) {
      st = { type, names: new Set(), waiting: false, forced: false, rejected: [] };
      this.states.set(type.typeUrl, st);
    }
    if (st.nonce !== undefined && req.responseNonce !== st.nonce) return true; // stale
    st.names = new Set(req.resourceNames.filter((n) => n !== '*'));
    if (st.nonce !== undefined && st.answeredNonce !== st.nonce) {
      st.answeredNonce = st.nonce;
      if (req.errorDetail !== undefined) {
        const version = st.sentVersion ?? '';
        st.rejected = [...st.rejected.filter((v) => v !== version), version].slice(-MAX_REJECTED);
        st.lastNack = {
          type: type.short,
          version,
          nonce: st.nonce,
          detail: req.errorDetail.message,
          at: this.hooks.now(),
          node: this.node,
        };
        this.hooks.onNack(st.lastNack);
      } else {
        st.ackedVersion = st.sentVersion;
        this.hooks.onAck(type.short, st.sentVersion ?? '');
      }
    }
    st.waiting = true;
    this.respond(st);
    return true;
  }

  /** A new snapshot: pushes every type whose content changed, in make-before-break order. */
  update(served: ServedSnapshot): void {
    this.served = served;
    for (const type of XDS_TYPES) {
      const st = this.states.get(type.typeUrl);
      if (st !== undefined) this.respond(st);
    }
  }

  private content(st: TypeState): ServedResource[] {
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

  private respond(st: TypeState): void {
    if (!st.waiting || this.served === undefined) return;
    const content = this.content(st);
    const version = sotwVersion(content);
    if (!st.forced && (version === st.sentVersion || st.rejected.includes(version))) return;
    const previous = st.sent;
    st.forced = false;
    st.waiting = false;
    st.nonce = String(++this.nonceCounter);
    st.sentVersion = version;
    st.sent = new Map(content.map((r) => [r.name, r.version]));
    const bytes = encodeSotwResponse({
      versionInfo: version,
      resources: content.map((r) => r.any),
      typeUrl: st.type.typeUrl,
      nonce: st.nonce,
    });
    this.hooks.send(bytes, { type: st.type.short, version, resources: content.length, removed: 0, nonce: st.nonce });
    if (previous !== undefined && changedNames(previous, st.sent)) {
      for (const kind of dependentKinds(st.type.kind)) {
        for (const other of this.states.values()) if (other.type.kind === kind) other.forced = true;
      }
    }
  }

  status(): StreamStatus {
    return {
      id: this.id,
      api: 'sotw',
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
            ...(st.nonce === undefined ? {} : { sentNonce: st.nonce }),
            ...(st.ackedVersion === undefined ? {} : { ackedVersion: st.ackedVersion }),
            ...(st.lastNack === undefined ? {} : { lastNack: st.lastNack }),
            resources: st.sent?.size ?? 0,
            pending: st.waiting ? 1 : 0,
          },
        ];
      }),
    };
  }
}

/** True when a resource was added, changed or removed between two sent sets. */
function changedNames(before: ReadonlyMap<string, string>, after: ReadonlyMap<string, string>): boolean {
  if (before.size !== after.size) return true;
  for (const [name, version] of after) if (before.get(name) !== version) return true;
  return false;
}
