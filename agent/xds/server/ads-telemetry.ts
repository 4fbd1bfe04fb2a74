/**
 * What the ADS server reports: counters per API, the latest ACK and NACK per
 * type, logs, and events (push, ack, nack, connected, disconnected) for
 * status, metrics and tests. It turns each stream's hooks into those; it
 * holds no stream state of its own.
 */
import type { Clock } from '../../../lib/clock.js';
import type { Logger } from '../../../lib/logger.js';
import { XDS_TYPES } from '../xds-types.js';
import type { NackRecord, StreamHooks, StreamStatus } from './stream-status.js';

export type XdsApi = 'sotw' | 'delta';

export interface TypeSummary {
  readonly type: string;
  /** Latest version any stream acknowledged. */
  readonly ackedVersion?: string;
  readonly ackedAt?: number;
  readonly lastNack?: NackRecord;
}

export interface PushCounters {
  responses: number;
  bytes: number;
  resources: number;
  removed: number;
  acks: number;
  nacks: number;
}

export interface AdsStatus {
  readonly socket: string;
  readonly streams: readonly StreamStatus[];
  readonly types: readonly TypeSummary[];
  readonly counters: { readonly sotw: Readonly<PushCounters>; readonly delta: Readonly<PushCounters> };
}

/**
 * Events of the server. 'ack' comes after the stream's acknowledged set was
 * updated: a listener may read SnapshotCache.acked(node) at once. The node's
 * acknowledged set also changes on 'connected' (a new stream starts with
 * nothing acknowledged) and 'disconnected' (the previous stream, if any, answers again).
 */
export type AdsEvent =
  | {
      kind: 'push';
      api: XdsApi;
      stream: number;
      type: string;
      version: string;
      bytes: number;
      resources: number;
      removed: number;
    }
  | { kind: 'ack'; api: XdsApi; stream: number; node: string; type: string; version: string }
  | { kind: 'nack'; api: XdsApi; stream: number; nack: NackRecord }
  | { kind: 'connected' | 'disconnected'; api: XdsApi; stream: number; node: string };

const zero = (): PushCounters => ({ responses: 0, bytes: 0, resources: 0, removed: 0, acks: 0, nacks: 0 });

/** The status of a server that has not started (yet): no streams, nothing pushed. */
export function idleAdsStatus(socket: string): AdsStatus {
  return { socket, streams: [], types: [], counters: { sotw: zero(), delta: zero() } };
}

export interface AdsTelemetry {
  /** The hooks of one stream: `write` puts bytes on its call, `onNode` watches the node in the cache. */
  hooks(stream: number, api: XdsApi, write: (bytes: Buffer) => void, onNode: (node: string) => void): StreamHooks;
  emit(event: AdsEvent): void;
  onEvent(listener: (event: AdsEvent) => void): () => void;
  status(socket: string, streams: readonly StreamStatus[]): AdsStatus;
  /** Per xDS type: the latest ACK and NACK over all streams (cheap: no stream is visited). */
  types(): readonly TypeSummary[];
}

export function createAdsTelemetry(log: Logger, clock: Clock): AdsTelemetry {
  const listeners = new Set<(event: AdsEvent) => void>();
  const summaries = new Map<string, { ackedVersion?: string; ackedAt?: number; lastNack?: NackRecord }>();
  const counters = { sotw: zero(), delta: zero() };
  // A listener's failure must not reach the stream that caused the event (it would close Envoy's ADS stream).
  const emit = (event: AdsEvent) => {
    for (const l of listeners) {
      try {
        l(event);
      } catch (err) {
        log.error('an xds event listener failed', { error: err, event: event.kind });
      }
    }
  };

  return {
    hooks(stream, api, write, onNode) {
      const c = counters[api];
      return {
        now: () => clock.now(),
        onNode,
        send(bytes, info) {
          c.responses++;
          c.bytes += bytes.length;
          c.resources += info.resources;
          c.removed += info.removed;
          log.debug('xds push', { stream, api, ...info, bytes: bytes.length });
          write(bytes);
          const { type, version, resources, removed } = info;
          emit({ kind: 'push', api, stream, type, version, bytes: bytes.length, resources, removed });
        },
        onAck(type, version, node) {
          c.acks++;
          summaries.set(type, { ...summaries.get(type), ackedVersion: version, ackedAt: clock.now() });
          emit({ kind: 'ack', api, stream, node, type, version });
        },
        onNack(nack) {
          c.nacks++;
          summaries.set(nack.type, { ...summaries.get(nack.type), lastNack: nack });
          log.warn('Envoy rejected a configuration (NACK); it keeps the previous one', {
            code: 'MESH_E_XDS_NACK',
            stream,
            type: nack.type,
            version: nack.version,
            detail: nack.detail,
            node: nack.node,
          });
          emit({ kind: 'nack', api, stream, nack });
        },
      };
    },
    emit,
    onEvent(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    types: () => XDS_TYPES.map((t) => ({ type: t.short, ...summaries.get(t.short) })),
    status: (socket, streams) => ({
      socket,
      streams,
      types: XDS_TYPES.map((t) => ({ type: t.short, ...summaries.get(t.short) })),
      counters: { sotw: { ...counters.sotw }, delta: { ...counters.delta } },
    }),
  };
}
