/**
 * The capture listeners against the real Envoy, without iptables (no root):
 * - Envoy accepts a snapshot with `capture:outbound` and `capture:inbound`
 *   (IPv4 and IPv6 addresses, original_dst): no NACK, both listeners active,
 *   acknowledged at the served versions;
 * - a connection made to a capture listener itself (original_dst has nothing
 *   to restore) is closed by its loop guard and counted, never forwarded;
 * - routing by original destination: the iptables REDIRECT is replaced by a
 *   PROXY header (the proxy_protocol listener filter, added after
 *   original_dst in this test only, sets the destination the same way), so
 *   the filter chains and clusters are the real ones: a mesh destination goes
 *   through mTLS to the service with the caller's SPIFFE ID in XFCC; an
 *   unknown one passes through (allow) or is refused (registryOnly), each
 *   counted; inbound, the workload's chain requires mTLS (plaintext refused)
 *   unless the workload is permissive.
 * The end-to-end test with iptables REDIRECT in network namespaces is in
 * test/privileged/.
 */

import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import t, { type Test } from 'tap';
import { buildBootstrap } from '../../agent/envoy/bootstrap.js';
import type { ModelCapture, ProxyModel } from '../../agent/model/proxy-model.js';
import { createSnapshotCache, type SnapshotCache } from '../../agent/xds/cache/snapshot-cache.js';
import { CAPTURE_INBOUND_LISTENER, CAPTURE_OUTBOUND_LISTENER } from '../../agent/xds/names.js';
import type { XdsResource } from '../../agent/xds/resources/common.js';
import { type AdsServer, startAdsServer } from '../../agent/xds/server/ads-server.js';
import type { Identities, Snapshot } from '../../agent/xds/snapshot.js';
import { buildSnapshot } from '../../agent/xds/snapshot-build.js';
import { systemClock } from '../../lib/clock.js';
import { createLogger } from '../../lib/logger.js';
import { type EnvoyProcess, startEnvoy } from '../support/envoy.js';
import { type EchoAnswer, startEchoApp, xfccUri } from '../support/mesh-apps.js';
import { freePorts } from '../support/ports.js';
import { withResources } from '../support/snapshot-edits.js';
import { tempDir } from '../support/temp-dir.js';
import { createTestCa } from '../support/test-ca.js';
import { waitFor } from '../support/wait.js';
import { webApiModel } from '../support/web-api-model.js';

t.setTimeout(240_000);

const TD = 'example.org';
const WEB = `spiffe://${TD}/ns/default/sa/web`;
const API = `spiffe://${TD}/ns/default/sa/api`;
const NODE = 'vm-1';

const PROXY_PROTOCOL = {
  name: 'envoy.filters.listener.proxy_protocol',
  typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol' },
};

/** The snapshot with a PROXY header read after original_dst on both capture listeners (test only). */
function withProxyHeader(snapshot: Snapshot): Snapshot {
  const edit = (name: string) => {
    const listener = structuredClone(snapshot.resources.listeners.get(name)) as XdsResource;
    listener.listener_filters = [...(listener.listener_filters as XdsResource[]), PROXY_PROTOCOL];
    return { kind: 'listeners' as const, name, resource: listener };
  };
  return withResources(snapshot, [edit(CAPTURE_OUTBOUND_LISTENER), edit(CAPTURE_INBOUND_LISTENER)]);
}

type Outcome = { status: number; body: string } | { closed: string };

/**
 * One HTTP GET to 127.0.0.1:port, optionally preceded by a PROXY header naming
 * `dst` as the original destination, optionally over TLS (with a client SVID).
 */
function request(
  port: number,
  options: { dst?: { address: string; port: number }; tls?: { certPem: string; keyPem: string; caPem: string } } = {},
): Promise<Outcome> {
  return new Promise((resolve) => {
    const raw = net.connect(port, '127.0.0.1');
    let data = '';
    let settled = false;
    const done = (o: Outcome) => {
      if (settled) return;
      settled = true;
      raw.destroy();
      resolve(o);
    };
    const speak = (socket: net.Socket) => {
      socket.on('data', (c: Buffer) => {
        data += c.toString('latin1');
      });
      socket.on('error', (err) => done({ closed: err.message }));
      socket.on('close', () => {
        const match = /^HTTP\/1\.[01] (\d{3})/.exec(data);
        done(
          match ? { status: Number(match[1]), body: data.slice(data.indexOf('\r\n\r\n') + 4) } : { closed: `after ${data.length} bytes` },
        );
      });
      socket.write('GET / HTTP/1.1\r\nHost: captured\r\nConnection: close\r\n\r\n');
    };
    raw.setTimeout(5_000, () => done({ closed: 'timeout' }));
    raw.on('error', (err) => done({ closed: err.message }));
    raw.on('connect', () => {
      if (options.dst !== undefined) {
        const family = options.dst.address.includes(':') ? 'TCP6' : 'TCP4';
        const src = family === 'TCP6' ? '::1' : '127.0.0.1';
        raw.write(`PROXY ${family} ${src} ${options.dst.address} 40000 ${options.dst.port}\r\n`);
      }
      if (options.tls === undefined) return speak(raw);
      const secure = tls.connect({
        socket: raw,
        ca: options.tls.caPem,
        cert: options.tls.certPem,
        key: options.tls.keyPem,
        checkServerIdentity: () => undefined,
      });
      secure.on('secureConnect', () => speak(secure));
      secure.on('error', (err) => done({ closed: err.message }));
    });
  });
}

function answer(o: Outcome): EchoAnswer | undefined {
  if (!('status' in o) || o.status !== 200) return undefined;
  const body = o.body.slice(o.body.indexOf('{'), o.body.lastIndexOf('}') + 1);
  return JSON.parse(body) as EchoAnswer;
}

interface Rig {
  ads: AdsServer;
  cache: SnapshotCache;
  envoy: EnvoyProcess;
  model: ProxyModel;
  identities: Identities;
  ports: { apiApp: number; legacy: number; outbound: number; inbound: number };
}

async function rig(t: Test): Promise<Rig> {
  const dir = await tempDir(t, 'capture-it-');
  const ca = await createTestCa(TD);
  const webApp = await startEchoApp('web');
  const apiApp = await startEchoApp('api');
  // Outside the mesh: reached only through the passthrough.
  const legacy = await startEchoApp('legacy');
  const [apiMesh, webMesh, local, outbound, inbound] = (await freePorts(5)) as [number, number, number, number, number];
  const cache = createSnapshotCache();
  const ads = await startAdsServer({
    socketPath: path.join(dir, 'ads.sock'),
    cache,
    clock: systemClock,
    log: createLogger({ level: 'warn', sink: { write: () => {} } }),
  });
  const base = webApiModel(TD, { webApp: webApp.port, apiApp: apiApp.port, webMesh, apiMesh, local });
  const capture: ModelCapture = {
    outboundPort: outbound,
    inboundPort: inbound,
    ipv6: true,
    policy: 'allow',
    caller: 'web',
    // api's instance: 127.0.0.1 on its app port (on a real host: the instance's address, reached through REDIRECT).
    chains: [{ service: 'api', port: apiApp.port, addresses: ['127.0.0.1', '::1'] }],
    inboundWorkloads: ['api', 'web'],
  };
  const model: ProxyModel = { ...base, capture };
  const identities: Identities = { certs: new Map([WEB, API].map((id) => [id, ca.issue(id)])), bundlePem: ca.bundlePem };
  cache.setSnapshot(NODE, buildSnapshot(model, identities));
  const envoy = await startEnvoy({
    bootstrap: buildBootstrap({ nodeName: NODE, adminPort: 0, adsSocket: path.join(dir, 'ads.sock'), api: 'delta' }),
  });
  t.teardown(async () => {
    await envoy.stop();
    await ads.close();
    await Promise.all([webApp.close(), apiApp.close(), legacy.close()]);
  });
  return { ads, cache, envoy, model, identities, ports: { apiApp: apiApp.port, legacy: legacy.port, outbound, inbound } };
}

/** Serves a snapshot and waits until Envoy acknowledged both capture listeners at their served versions; fails on a NACK. */
async function serve(t: Test, r: Rig, snapshot: Snapshot): Promise<void> {
  r.cache.setSnapshot(NODE, snapshot);
  await waitFor(
    async () => {
      const nack = r.ads.status().types.find((x) => x.lastNack !== undefined);
      if (nack !== undefined) throw new Error(`Envoy rejected ${nack.type}: ${nack.lastNack?.detail}`);
      const acked = r.cache.acked(NODE);
      const served = snapshot.versions;
      const all = [CAPTURE_OUTBOUND_LISTENER, CAPTURE_INBOUND_LISTENER].every((l) => acked.listeners.get(l) === served.listeners.get(l));
      const clusters = [...served.clusters].every(([name, v]) => acked.clusters.get(name) === v);
      return all && clusters ? true : undefined;
    },
    { timeoutMs: 15_000, what: 'Envoy to acknowledge the capture listeners' },
  );
  t.pass('Envoy acknowledged the snapshot, no NACK');
}

async function stat(envoy: EnvoyProcess, name: string): Promise<number> {
  return (await envoy.stats()).get(name) ?? 0;
}

t.test('Envoy accepts the capture listeners; connections to the listeners themselves hit the loop guards', async (t) => {
  const r = await rig(t);
  await serve(t, r, buildSnapshot(r.model, r.identities));
  const dump = await r.envoy.configDump();
  const lds = dump.configs.find((c) => c['@type'].endsWith('ListenersConfigDump')) as {
    dynamic_listeners?: Array<{ name: string; active_state?: unknown; warming_state?: unknown; error_state?: unknown }>;
  };
  for (const name of [CAPTURE_OUTBOUND_LISTENER, CAPTURE_INBOUND_LISTENER]) {
    const l = lds.dynamic_listeners?.find((d) => d.name === name);
    t.ok(l?.active_state !== undefined && l.warming_state === undefined && l.error_state === undefined, `${name} is active`);
  }
  const listeners = await r.envoy.admin('/listeners');
  t.match(listeners, `capture:outbound::127.0.0.1:${r.ports.outbound}`, 'bound on 127.0.0.1');
  t.match(listeners, `[::1]:${r.ports.outbound}`, 'and on [::1]');
  t.match(listeners, `[::]:${r.ports.inbound}`, 'inbound on 0.0.0.0 and [::]');

  const direct = await request(r.ports.outbound);
  t.ok('closed' in direct, `a connection to the outbound listener itself is closed (${JSON.stringify(direct).slice(0, 80)})`);
  await waitFor(async () => ((await stat(r.envoy, 'tcp.capture_outbound_loop.downstream_cx_total')) >= 1 ? true : undefined), {
    what: 'the outbound loop guard counted it',
  });
  t.equal(await stat(r.envoy, 'tcp.capture_passthrough.downstream_cx_total'), 0, 'never passed through to itself');

  const inboundDirect = await request(r.ports.inbound);
  t.ok('closed' in inboundDirect, 'a connection to the inbound listener itself is closed');
  await waitFor(async () => ((await stat(r.envoy, 'tcp.capture_inbound_loop.downstream_cx_total')) >= 1 ? true : undefined), {
    what: 'the inbound loop guard counted it',
  });
});

t.test('routing by original destination (PROXY header in place of REDIRECT): mesh, passthrough, blackhole, inbound mTLS', async (t) => {
  const r = await rig(t);
  await serve(t, r, withProxyHeader(buildSnapshot(r.model, r.identities)));
  const web = r.identities.certs.get(WEB);
  if (web === undefined) throw new Error('no web SVID');

  const mesh = answer(await request(r.ports.outbound, { dst: { address: '127.0.0.1', port: r.ports.apiApp } }));
  t.equal(mesh?.app, 'api', 'a captured call to api address:port reached api');
  t.equal(xfccUri(mesh?.xfcc ?? ''), WEB, "through mTLS with the caller's SPIFFE ID");
  t.ok((await stat(r.envoy, `http.capture_outbound_api_${r.ports.apiApp}.downstream_rq_total`)) >= 1, 'counted on its chain');

  const passed = answer(await request(r.ports.outbound, { dst: { address: '127.0.0.1', port: r.ports.legacy } }));
  t.equal(passed?.app, 'legacy', 'an unknown destination passes through (allow)');
  t.equal(passed?.xfcc, '', 'in plaintext, with no identity');
  t.ok((await stat(r.envoy, 'tcp.capture_passthrough.downstream_cx_total')) >= 1, 'counted as passthrough');

  const v6 = answer(await request(r.ports.outbound, { dst: { address: '::1', port: r.ports.apiApp } }));
  t.equal(v6?.app, 'api', 'an IPv6 destination of api (a /128 prefix of its chain) reaches api too');

  const inbound = answer(
    await request(r.ports.inbound, {
      dst: { address: '127.0.0.1', port: r.ports.apiApp },
      tls: { certPem: web.chainPem, keyPem: web.keyPem, caPem: r.identities.bundlePem },
    }),
  );
  t.equal(inbound?.app, 'api', "inbound capture: mTLS to api's app port reaches api");
  t.equal(xfccUri(inbound?.xfcc ?? ''), WEB, 'with the peer SPIFFE ID in XFCC');
  const plain = await request(r.ports.inbound, { dst: { address: '127.0.0.1', port: r.ports.apiApp } });
  t.ok('closed' in plain, 'plaintext to a strict workload app port is refused');
  const nobody = await request(r.ports.inbound, { dst: { address: '127.0.0.1', port: r.ports.legacy } });
  t.ok('closed' in nobody, 'a port of no captured workload matches no chain: closed');
  await waitFor(async () => ((await stat(r.envoy, `listener.0.0.0.0_${r.ports.inbound}.no_filter_chain_match`)) >= 1 ? true : undefined), {
    what: 'no_filter_chain_match counted on the inbound capture listener',
  });

  // registryOnly, and api permissive.
  const strictModel: ProxyModel = {
    ...r.model,
    capture: { ...(r.model.capture as ModelCapture), policy: 'registryOnly' },
    workloads: r.model.workloads.map((w) => (w.name === 'api' ? { ...w, inbound: { mtls: { name: 'api-open', mode: 'permissive' } } } : w)),
  };
  await serve(t, r, withProxyHeader(buildSnapshot(strictModel, r.identities)));
  const refused = await request(r.ports.outbound, { dst: { address: '127.0.0.1', port: r.ports.legacy } });
  t.ok('closed' in refused || ('status' in refused && refused.status !== 200), 'an unknown destination is refused (registryOnly)');
  await waitFor(async () => ((await stat(r.envoy, 'tcp.capture_blackhole.downstream_cx_total')) >= 1 ? true : undefined), {
    what: 'the refusal counted on capture_blackhole',
  });
  t.equal(
    answer(await request(r.ports.outbound, { dst: { address: '127.0.0.1', port: r.ports.apiApp } }))?.app,
    'api',
    'mesh calls still work',
  );
  const open = answer(await request(r.ports.inbound, { dst: { address: '127.0.0.1', port: r.ports.apiApp } }));
  t.equal(open?.app, 'api', 'permissive: plaintext to the app port is accepted');
  t.equal(open?.xfcc, '', 'with no identity');
});
