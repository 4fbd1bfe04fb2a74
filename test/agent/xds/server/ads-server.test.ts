/**
 * The ADS server over real gRPC (a Unix socket, a grpc-js client playing
 * Envoy), once per API: a stream watches its own node's snapshots in the
 * cache; an 'ack' event comes after the node's acknowledged set changed; a
 * stream that ends leaves nothing acknowledged, and a new stream starts empty
 * until it acknowledges.
 */
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import t, { type Test } from 'tap';
import { createSnapshotCache, type SnapshotCache } from '../../../../agent/xds/cache/snapshot-cache.js';
import { ADS_SERVICE, type AdsServer, startAdsServer } from '../../../../agent/xds/server/ads-server.js';
import type { AdsEvent } from '../../../../agent/xds/server/ads-telemetry.js';
import { decodeDeltaResponse, decodeSotwResponse } from '../../../../agent/xds/server/wire.js';
import { systemClock } from '../../../../lib/clock.js';
import { encodeMessage } from '../../../../lib/envoy/protos.js';
import { TypeUrl } from '../../../../lib/envoy/type-urls.js';
import { createLogger } from '../../../../lib/logger.js';
import { tempDir } from '../../../support/temp-dir.js';
import { snapshotOf } from '../fixtures/streams.js';

type Api = 'sotw' | 'delta';
const AdsClient = grpc.makeGenericClientConstructor(ADS_SERVICE, 'AggregatedDiscoveryService');

interface Reply {
  readonly nonce: string;
  /** How many resources the response carries. */
  readonly resources: number;
}

/** One client stream: send requests, await replies in order. */
function openStream(client: grpc.Client, api: Api) {
  const method = api === 'sotw' ? 'StreamAggregatedResources' : 'DeltaAggregatedResources';
  const call = (client as unknown as Record<string, () => grpc.ClientDuplexStream<Buffer, Buffer>>)[method]?.call(client);
  if (call === undefined) throw new Error(`no method ${method}`);
  const replies: Reply[] = [];
  const waiting: Array<(r: Reply) => void> = [];
  call.on('data', (bytes: Buffer) => {
    const r = api === 'sotw' ? decodeSotwResponse(bytes) : decodeDeltaResponse(bytes);
    const reply: Reply = { nonce: r.nonce, resources: r.resources.length };
    const w = waiting.shift();
    if (w === undefined) replies.push(reply);
    else w(reply);
  });
  call.on('error', () => undefined); // cancelled by the test
  const send = (o: { node?: string; nonce?: string }) => {
    const common = { type_url: TypeUrl.Cluster, response_nonce: o.nonce ?? '', ...(o.node === undefined ? {} : { node: { id: o.node } }) };
    const type = api === 'sotw' ? 'envoy.service.discovery.v3.DiscoveryRequest' : 'envoy.service.discovery.v3.DeltaDiscoveryRequest';
    call.write(Buffer.from(encodeMessage(type, common)));
  };
  return {
    send,
    reply: (): Promise<Reply> => {
      const r = replies.shift();
      return r === undefined ? new Promise((resolve) => waiting.push(resolve)) : Promise.resolve(r);
    },
    pending: () => replies.length,
    cancel: () => call.cancel(),
  };
}

/** The next event the server emits that `match` accepts, mapped by it. */
function nextEvent<T>(ads: AdsServer, match: (e: AdsEvent) => T | undefined): Promise<T> {
  return new Promise((resolve) => {
    const off = ads.onEvent((e) => {
      const value = match(e);
      if (value === undefined) return;
      off();
      resolve(value);
    });
  });
}

async function rig(t: Test): Promise<{ ads: AdsServer; cache: SnapshotCache; client: grpc.Client }> {
  const dir = await tempDir(t, 'ads-');
  const cache = createSnapshotCache();
  const ads = await startAdsServer({
    socketPath: path.join(dir, 'ads.sock'),
    cache,
    clock: systemClock,
    log: createLogger({ level: 'error', sink: { write: () => undefined } }),
  });
  const client = new AdsClient(`unix:${path.join(dir, 'ads.sock')}`, grpc.credentials.createInsecure());
  t.teardown(async () => {
    client.close();
    await ads.close();
  });
  return { ads, cache, client };
}

for (const api of ['sotw', 'delta'] as const) {
  t.test(`${api}: per-node watches, acked resources after the 'ack' event, reconnect starts empty`, async (t) => {
    const { ads, cache, client } = await rig(t);
    const v1 = snapshotOf({ clusters: { a: '5' }, endpoints: { a: [1] } });
    cache.setSnapshot('vm-1', v1);
    const versionA = v1.versions.clusters.get('a');

    const s1 = openStream(client, api);
    const connected = nextEvent(ads, (e) => (e.kind === 'connected' ? e.node : undefined));
    s1.send({ node: 'vm-1' });
    t.equal(await connected, 'vm-1');
    const first = await s1.reply();
    t.equal(first.resources, 1, "vm-1's snapshot is served to vm-1's stream");
    t.equal(cache.acked('vm-1').clusters.size, 0, 'sent but not acknowledged');
    const acked = nextEvent(ads, (e) => (e.kind === 'ack' ? cache.acked(e.node).clusters.get('a') : undefined));
    s1.send({ nonce: first.nonce });
    t.equal(await acked, versionA, "at the 'ack' event the listener reads the acknowledged version");

    // Another node's stream gets nothing of vm-1, and its own snapshot once it is set.
    const s2 = openStream(client, api);
    const other = nextEvent(ads, (e) => (e.kind === 'connected' ? e.node : undefined));
    s2.send({ node: 'vm-2' });
    t.equal(await other, 'vm-2');
    t.equal(s2.pending(), 0, 'no snapshot for vm-2: nothing sent');
    cache.setSnapshot('vm-2', snapshotOf({ clusters: { b: '5', c: '5' }, endpoints: { b: [1], c: [2] } }));
    t.equal((await s2.reply()).resources, 2, "vm-2's own snapshot");
    t.equal(cache.acked('vm-1').clusters.get('a'), versionA, "vm-2's stream does not touch vm-1's acknowledgements");

    // The stream ends: nothing acknowledged for vm-1; a new stream starts empty until it acknowledges.
    const gone = nextEvent(ads, (e) => (e.kind === 'disconnected' && e.node === 'vm-1' ? true : undefined));
    s1.cancel();
    await gone;
    t.equal(cache.acked('vm-1').clusters.size, 0, 'stream gone: nothing acknowledged');
    const s3 = openStream(client, api);
    const back = nextEvent(ads, (e) => (e.kind === 'connected' ? e.node : undefined));
    s3.send({ node: 'vm-1' });
    await back;
    t.equal(cache.acked('vm-1').clusters.size, 0, 'reconnected: nothing acknowledged yet');
    const again = await s3.reply();
    const reacked = nextEvent(ads, (e) => (e.kind === 'ack' && e.node === 'vm-1' ? cache.acked('vm-1').clusters.get('a') : undefined));
    s3.send({ nonce: again.nonce });
    t.equal(await reacked, versionA, 'acknowledged again on the new stream');
    s2.cancel();
    s3.cancel();
  });
}
