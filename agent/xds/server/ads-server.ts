/**
 * The agent's ADS server: gRPC on a Unix socket (mode 0660 by default, group
 * optionally set to Envoy's), serving both state-of-the-world
 * (StreamAggregatedResources) and incremental (DeltaAggregatedResources)
 * streams from the current snapshot. A snapshot is checked (checkSnapshot) and
 * encoded before it replaces the served one; a failing snapshot is refused
 * with MESH_E_XDS_SNAPSHOT_INVALID and Envoy keeps the previous config. A
 * snapshot with the same version as the served one is a no-op (no push).
 */
import { chmod, chown, mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { Clock } from '../../../lib/clock.js';
import { MeshError } from '../../../lib/errors.js';
import type { Logger } from '../../../lib/logger.js';
import { type ServedSnapshot, SnapshotEncoder } from '../cache/served-snapshot.js';
import { checkSnapshot } from '../check-snapshot.js';
import type { Snapshot } from '../snapshot.js';
import { XDS_TYPES } from '../xds-types.js';
import { DeltaStream } from './delta-stream.js';
import { SotwStream } from './sotw-stream.js';
import type { NackRecord, StreamHooks, StreamStatus } from './stream-status.js';
import { decodeDeltaRequest, decodeSotwRequest } from './wire.js';

const SERVICE = '/envoy.service.discovery.v3.AggregatedDiscoveryService';
const passThrough = (b: Buffer): Buffer => b;

function method(name: string): grpc.MethodDefinition<Buffer, Buffer> {
  return {
    path: `${SERVICE}/${name}`,
    requestStream: true,
    responseStream: true,
    requestSerialize: passThrough,
    requestDeserialize: passThrough,
    responseSerialize: passThrough,
    responseDeserialize: passThrough,
  };
}

export const ADS_SERVICE: grpc.ServiceDefinition = {
  StreamAggregatedResources: method('StreamAggregatedResources'),
  DeltaAggregatedResources: method('DeltaAggregatedResources'),
};

export interface AdsServerOptions {
  socketPath: string;
  log: Logger;
  clock: Clock;
  /** Default 0o660: the agent and Envoy's group. */
  socketMode?: number;
  /** Group id to give the socket (Envoy's group when Envoy runs as another user). */
  socketGid?: number;
}

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
  readonly snapshotVersion?: string;
  readonly streams: readonly StreamStatus[];
  readonly types: readonly TypeSummary[];
  readonly counters: { readonly sotw: Readonly<PushCounters>; readonly delta: Readonly<PushCounters> };
}

export type AdsEvent =
  | {
      kind: 'push';
      api: 'sotw' | 'delta';
      stream: number;
      type: string;
      version: string;
      bytes: number;
      resources: number;
      removed: number;
    }
  | { kind: 'ack'; api: 'sotw' | 'delta'; stream: number; type: string; version: string }
  | { kind: 'nack'; api: 'sotw' | 'delta'; stream: number; nack: NackRecord }
  | { kind: 'connected' | 'disconnected'; api: 'sotw' | 'delta'; stream: number; node: string };

export interface AdsServer {
  /** Checks, encodes and serves a snapshot; returns false when it equals the served one (nothing pushed). */
  setSnapshot(snapshot: Snapshot): boolean;
  current(): ServedSnapshot | undefined;
  status(): AdsStatus;
  onEvent(listener: (event: AdsEvent) => void): () => void;
  close(): Promise<void>;
}

const zero = (): PushCounters => ({ responses: 0, bytes: 0, resources: 0, removed: 0, acks: 0, nacks: 0 });

/** The status of a server that has not started (yet): no streams, nothing pushed. */
export function idleAdsStatus(socket: string): AdsStatus {
  return { socket, streams: [], types: [], counters: { sotw: zero(), delta: zero() } };
}

type Stream = SotwStream | DeltaStream;

export async function startAdsServer(options: AdsServerOptions): Promise<AdsServer> {
  const { log, clock } = options;
  const encoder = new SnapshotEncoder();
  let served: ServedSnapshot | undefined;
  const streams = new Map<number, Stream>();
  const listeners = new Set<(event: AdsEvent) => void>();
  const summaries = new Map<string, { ackedVersion?: string; ackedAt?: number; lastNack?: NackRecord }>();
  const counters = { sotw: zero(), delta: zero() };
  let nextId = 0;

  const emit = (event: AdsEvent) => {
    for (const l of listeners) l(event);
  };

  const serve = (api: 'sotw' | 'delta', call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
    const id = ++nextId;
    const c = counters[api];
    const hooks: StreamHooks = {
      now: () => clock.now(),
      send(bytes, info) {
        c.responses++;
        c.bytes += bytes.length;
        c.resources += info.resources;
        c.removed += info.removed;
        log.debug('xds push', { stream: id, api, ...info, bytes: bytes.length });
        call.write(bytes);
        emit({
          kind: 'push',
          api,
          stream: id,
          type: info.type,
          version: info.version,
          bytes: bytes.length,
          resources: info.resources,
          removed: info.removed,
        });
      },
      onAck(type, version) {
        c.acks++;
        summaries.set(type, { ...summaries.get(type), ackedVersion: version, ackedAt: clock.now() });
        emit({ kind: 'ack', api, stream: id, type, version });
      },
      onNack(nack) {
        c.nacks++;
        summaries.set(nack.type, { ...summaries.get(nack.type), lastNack: nack });
        log.warn('Envoy rejected a configuration (NACK); it keeps the previous one', {
          code: 'MESH_E_XDS_NACK',
          stream: id,
          type: nack.type,
          version: nack.version,
          detail: nack.detail,
          node: nack.node,
        });
        emit({ kind: 'nack', api, stream: id, nack });
      },
    };
    const stream: Stream = api === 'sotw' ? new SotwStream(id, hooks) : new DeltaStream(id, hooks);
    streams.set(id, stream);
    let announced = false;
    const end = () => {
      if (!streams.delete(id)) return;
      log.info('xds stream closed', { stream: id, api, node: stream.nodeId });
      emit({ kind: 'disconnected', api, stream: id, node: stream.nodeId });
    };
    call.on('data', (bytes: Buffer) => {
      try {
        const known =
          stream instanceof SotwStream
            ? stream.request(decodeSotwRequest(bytes), served)
            : stream.request(decodeDeltaRequest(bytes), served);
        if (!announced && stream.nodeId !== '') {
          announced = true;
          log.info('xds stream opened', { stream: id, api, node: stream.nodeId });
          emit({ kind: 'connected', api, stream: id, node: stream.nodeId });
        }
        if (!known) log.warn('xds request for a type the agent does not serve', { stream: id, api, bytes: bytes.length });
      } catch (err) {
        log.error('bad xds request; closing the stream', { stream: id, api, error: err });
        call.destroy(err as Error);
        end();
      }
    });
    call.on('end', () => {
      end();
      call.end();
    });
    call.on('error', end);
    call.on('cancelled', end);
    call.on('close', end);
  };

  const server = new grpc.Server({ 'grpc.max_receive_message_length': 16 * 1024 * 1024 });
  server.addService(ADS_SERVICE, {
    StreamAggregatedResources: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => serve('sotw', call),
    DeltaAggregatedResources: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => serve('delta', call),
  });

  await mkdir(path.dirname(options.socketPath), { recursive: true, mode: 0o750 });
  await rm(options.socketPath, { force: true });
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`unix:${options.socketPath}`, grpc.ServerCredentials.createInsecure(), (err) =>
      err
        ? reject(
            new MeshError('MESH_E_XDS_LISTEN', `cannot listen on the ADS socket ${options.socketPath}: ${err.message}`, { cause: err }),
          )
        : resolve(),
    ),
  );
  await chmod(options.socketPath, options.socketMode ?? 0o660);
  if (options.socketGid !== undefined) await chown(options.socketPath, process.getuid?.() ?? 0, options.socketGid);
  log.info('xds server listening', { socket: options.socketPath });

  return {
    setSnapshot(snapshot) {
      if (served?.version === snapshot.version) return false;
      const problems = checkSnapshot(snapshot);
      if (problems.length > 0) {
        throw new MeshError('MESH_E_XDS_SNAPSHOT_INVALID', `snapshot ${snapshot.version.slice(0, 12)} not served: ${problems.join('; ')}`, {
          details: { problems },
        });
      }
      served = encoder.serve(snapshot);
      for (const stream of streams.values()) stream.update(served);
      return true;
    },
    current: () => served,
    status: () => ({
      socket: options.socketPath,
      ...(served === undefined ? {} : { snapshotVersion: served.version }),
      streams: [...streams.values()].map((s) => s.status()),
      types: XDS_TYPES.map((t) => ({ type: t.short, ...summaries.get(t.short) })),
      counters: { sotw: { ...counters.sotw }, delta: { ...counters.delta } },
    }),
    onEvent(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async close() {
      // Envoy never ends its streams, so a graceful shutdown would wait forever.
      server.forceShutdown();
      await rm(options.socketPath, { force: true });
    },
  };
}
