/**
 * The agent's ADS server: gRPC on a Unix socket (mode 0660 by default, group
 * optionally set to Envoy's), serving both state-of-the-world
 * (StreamAggregatedResources) and incremental (DeltaAggregatedResources)
 * streams. It only adapts gRPC calls to stream state and the snapshot cache:
 * each call gets a stream (sotw-stream.ts or delta-stream.ts) that watches its
 * node's snapshots in the cache once its first request names the node. The
 * cache checks, encodes and versions snapshots (cache/snapshot-cache.ts).
 */
import { chmod, chown, mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { Clock } from '../../../lib/clock.js';
import { MeshError } from '../../../lib/errors.js';
import type { Logger } from '../../../lib/logger.js';
import type { SnapshotCache } from '../cache/snapshot-cache.js';
import { type AdsEvent, type AdsStatus, createAdsTelemetry, type TypeSummary, type XdsApi } from './ads-telemetry.js';
import { DeltaStream } from './delta-stream.js';
import { SotwStream } from './sotw-stream.js';
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
  /** Where the streams get their node's snapshots; the data plane sets them. */
  cache: SnapshotCache;
  /** Default 0o660: the agent and Envoy's group. */
  socketMode?: number;
  /** Group id to give the socket (Envoy's group when Envoy runs as another user). */
  socketGid?: number;
}

export interface AdsServer {
  status(): AdsStatus;
  /** Per xDS type: the latest ACK and NACK, without visiting the streams. */
  types(): readonly TypeSummary[];
  onEvent(listener: (event: AdsEvent) => void): () => void;
  close(): Promise<void>;
}

export async function startAdsServer(options: AdsServerOptions): Promise<AdsServer> {
  const { log, cache } = options;
  const telemetry = createAdsTelemetry(log, options.clock);
  /** Open calls: their stream, and how to end them (which also ends their watch in the cache). */
  const sessions = new Map<number, { stream: SotwStream | DeltaStream; end: () => void }>();
  let nextId = 0;

  const serve = (api: XdsApi, call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
    const id = ++nextId;
    let unwatch: (() => void) | undefined;
    let announced = false;
    const watchNode = (node: string) => {
      unwatch?.();
      unwatch = cache.watch(node, stream);
      if (announced) {
        log.warn("xds stream changed its node id; it now gets that node's snapshots", { stream: id, api, node });
        return;
      }
      announced = true;
      log.info('xds stream opened', { stream: id, api, node });
      telemetry.emit({ kind: 'connected', api, stream: id, node });
    };
    const hooks = telemetry.hooks(id, api, (bytes) => call.write(bytes), watchNode);
    const stream = api === 'sotw' ? new SotwStream(id, hooks) : new DeltaStream(id, hooks);
    const handle = (bytes: Buffer): boolean =>
      stream instanceof SotwStream ? stream.request(decodeSotwRequest(bytes)) : stream.request(decodeDeltaRequest(bytes));
    const end = () => {
      if (!sessions.delete(id)) return;
      unwatch?.();
      log.info('xds stream closed', { stream: id, api, node: stream.nodeId });
      telemetry.emit({ kind: 'disconnected', api, stream: id, node: stream.nodeId });
    };
    sessions.set(id, { stream, end });
    call.on('data', (bytes: Buffer) => {
      try {
        const known = handle(bytes);
        if (!known) log.warn('xds request for a type the agent does not serve', { stream: id, api, bytes: bytes.length });
        if (!announced) log.warn('xds request without a node id: nothing is served until the stream names its node', { stream: id, api });
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
    status: () =>
      telemetry.status(
        options.socketPath,
        [...sessions.values()].map((s) => s.stream.status()),
      ),
    types: () => telemetry.types(),
    onEvent: (listener) => telemetry.onEvent(listener),
    async close() {
      // Envoy never ends its streams, so a graceful shutdown would wait forever.
      server.forceShutdown();
      for (const session of [...sessions.values()]) session.end();
      await rm(options.socketPath, { force: true });
    },
  };
}
