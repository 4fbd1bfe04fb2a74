/**
 * The ADS server against a real Envoy, once per API (state of the world and
 * delta, chosen in the bootstrap): two workloads behind one Envoy carry mTLS
 * traffic with the caller's SPIFFE ID in XFCC; plaintext and foreign trust
 * domains are refused; a resource Envoy rejects is NACKed, recorded, not sent
 * again while Envoy keeps serving, and the next valid change is accepted; a
 * stream cut in the middle of a push (Envoy restarted with the same node id)
 * converges with no cluster stuck warming; the acknowledged resources follow
 * Envoy (a NACKed cluster keeps its previous acknowledged version), also
 * after the ADS server restarts under a running Envoy (delta: the listeners
 * Envoy kept are acknowledged without being re-sent).
 */
import path from 'node:path';
import t, { type Test } from 'tap';
import { buildBootstrap } from '../../agent/envoy/bootstrap.js';
import type { ProxyModel } from '../../agent/model/proxy-model.js';
import { createSnapshotCache, type SnapshotCache } from '../../agent/xds/cache/snapshot-cache.js';
import { inboundListenerName, outboundClusterName } from '../../agent/xds/names.js';
import type { XdsResource } from '../../agent/xds/resources/common.js';
import { type AdsServer, startAdsServer } from '../../agent/xds/server/ads-server.js';
import type { AdsEvent } from '../../agent/xds/server/ads-telemetry.js';
import type { Identities } from '../../agent/xds/snapshot.js';
import { buildSnapshot } from '../../agent/xds/snapshot-build.js';
import { systemClock } from '../../lib/clock.js';
import { createLogger } from '../../lib/logger.js';
import { type EnvoyProcess, startEnvoy } from '../support/envoy.js';
import { type EchoAnswer, getJson, plaintextProbe, startEchoApp, tlsProbe, xfccUri } from '../support/mesh-apps.js';
import { freePorts } from '../support/ports.js';
import { withResource } from '../support/snapshot-edits.js';
import { tempDir } from '../support/temp-dir.js';
import { createTestCa } from '../support/test-ca.js';
import { waitFor } from '../support/wait.js';
import { webApiModel } from '../support/web-api-model.js';

t.setTimeout(240_000);

const TD = 'example.org';
const WEB = `spiffe://${TD}/ns/default/sa/web`;
const API = `spiffe://${TD}/ns/default/sa/api`;
const API_V2 = `spiffe://${TD}/ns/default/sa/api-v2`;

const NODE = 'vm-1';

interface Rig {
  ads: AdsServer;
  cache: SnapshotCache;
  envoy: EnvoyProcess;
  bootstrap: Record<string, unknown>;
  model: ProxyModel;
  identities: Identities;
  ports: { apiMesh: number; webMesh: number; local: number };
  events: AdsEvent[];
  logs: string[];
  socket: string;
}

async function rig(t: Test, api: 'sotw' | 'delta'): Promise<Rig> {
  const dir = await tempDir(t, 'xds-it-');
  const ca = await createTestCa(TD);
  const webApp = await startEchoApp('web');
  const apiApp = await startEchoApp('api');
  const [apiMesh, webMesh, local] = (await freePorts(3)) as [number, number, number];
  const logs: string[] = [];
  const cache = createSnapshotCache();
  const ads = await startAdsServer({
    socketPath: path.join(dir, 'ads.sock'),
    cache,
    clock: systemClock,
    log: createLogger({ level: 'debug', sink: { write: (l) => logs.push(l) } }),
  });
  const events: AdsEvent[] = [];
  ads.onEvent((e) => events.push(e));
  const model = webApiModel(TD, { webApp: webApp.port, apiApp: apiApp.port, webMesh, apiMesh, local });

  const identities: Identities = { certs: new Map([WEB, API].map((id) => [id, ca.issue(id)])), bundlePem: ca.bundlePem };
  cache.setSnapshot(NODE, buildSnapshot(model, identities));
  const bootstrap = buildBootstrap({ nodeName: NODE, adminPort: 0, adsSocket: path.join(dir, 'ads.sock'), api });
  const envoy = await startEnvoy({ bootstrap });
  const socket = path.join(dir, 'ads.sock');
  const r: Rig = { ads, cache, envoy, bootstrap, model, identities, ports: { apiMesh, webMesh, local }, events, logs, socket };
  t.teardown(async () => {
    await r.envoy.stop();
    await r.ads.close();
    await webApp.close();
    await apiApp.close();
  });
  return r;
}

async function activeClusters(envoy: EnvoyProcess): Promise<{ active: XdsResource[]; warming: XdsResource[] }> {
  const dump = await envoy.configDump();
  const cds = dump.configs.find((c) => c['@type'].endsWith('ClustersConfigDump')) as
    | { dynamic_active_clusters?: XdsResource[]; dynamic_warming_clusters?: XdsResource[] }
    | undefined;
  return { active: cds?.dynamic_active_clusters ?? [], warming: cds?.dynamic_warming_clusters ?? [] };
}

async function healthyHosts(envoy: EnvoyProcess, cluster: string): Promise<number> {
  const clusters = await envoy.clusters();
  const status = clusters.cluster_statuses?.find((c) => c.name === cluster) as { host_statuses?: unknown[] } | undefined;
  return status?.host_statuses?.length ?? 0;
}

for (const api of ['sotw', 'delta'] as const) {
  t.test(`${api}: mTLS between two workloads, XFCC, plaintext and foreign trust domain refused`, async (t) => {
    const r = await rig(t, api);
    const answer = await waitFor(() => getJson<EchoAnswer>(r.ports.local).catch(() => undefined), {
      timeoutMs: 15_000,
      what: 'web -> api through Envoy',
    });
    t.equal(answer.app, 'api', 'the request reached api');
    t.equal(xfccUri(answer.xfcc), WEB, 'api saw the caller SPIFFE ID in x-forwarded-client-cert');
    t.equal(r.ads.status().streams[0]?.api, api, `Envoy speaks ${api}`);
    const served = r.cache.current(NODE)?.snapshot.versions.listeners;
    const inbound = ['web', 'api'].map(inboundListenerName);
    await waitFor(async () => (inbound.every((l) => r.cache.acked(NODE).listeners.get(l) === served?.get(l)) ? true : undefined), {
      what: 'both inbound listeners acknowledged at their served versions',
    });
    t.pass('Envoy acknowledged both inbound listeners at the versions the cache serves');

    const plain = await plaintextProbe(r.ports.apiMesh);
    t.notOk(plain.ok, `plaintext to the mesh port fails (${plain.ok ? plain.status : plain.error})`);

    const ownCa = r.identities;
    const web = ownCa.certs.get(WEB);
    const good = await tlsProbe(r.ports.apiMesh, { certPem: web?.chainPem, keyPem: web?.keyPem, caPem: ownCa.bundlePem });
    t.ok(good.ok && good.status === 200, 'a client with an SVID of the trust domain gets through (the probe works)');

    const noCert = await tlsProbe(r.ports.apiMesh, { caPem: ownCa.bundlePem });
    t.notOk(noCert.ok && noCert.status === 200, 'no client certificate: refused');

    const foreign = await createTestCa('evil.example');
    const evil = foreign.issue('spiffe://evil.example/ns/default/sa/web');
    const refused = await tlsProbe(r.ports.apiMesh, { certPem: evil.chainPem, keyPem: evil.keyPem, caPem: ownCa.bundlePem });
    t.notOk(
      refused.ok && refused.status === 200,
      `a certificate of another trust domain is refused (${refused.ok ? refused.status : refused.error})`,
    );

    // Even if the bundle also trusted the foreign CA (federation), the trust-domain SAN check refuses the foreign ID.
    r.cache.setSnapshot(NODE, buildSnapshot(r.model, { ...r.identities, bundlePem: r.identities.bundlePem + foreign.bundlePem }));
    await waitFor(async () => (r.ads.status().types.find((x) => x.type === 'SDS')?.ackedVersion === undefined ? undefined : true), {
      what: 'SDS ACK',
    });
    await waitFor(
      async () => {
        const s = await r.envoy.stats();
        return [...s.entries()].some(([k, v]) => k.includes('ssl') && k.endsWith('fail_verify_san') && v > 0) ||
          (await tlsProbe(r.ports.apiMesh, { certPem: evil.chainPem, keyPem: evil.keyPem, caPem: ownCa.bundlePem })).ok === false
          ? true
          : undefined;
      },
      { timeoutMs: 10_000, what: 'the foreign ID to be refused by the SAN check' },
    );
    const federated = await tlsProbe(r.ports.apiMesh, { certPem: evil.chainPem, keyPem: evil.keyPem, caPem: ownCa.bundlePem });
    t.notOk(federated.ok && federated.status === 200, 'foreign trust domain refused even when its CA is trusted');
  });

  t.test(`${api}: NACK recorded, not re-sent, previous config kept, next valid change accepted`, async (t) => {
    const r = await rig(t, api);
    await waitFor(() => getJson(r.ports.local).catch(() => undefined), { timeoutMs: 15_000, what: 'traffic' });
    const good = buildSnapshot(r.model, r.identities);
    const cluster = outboundClusterName('api', 'web');
    const bad = withResource(good, 'clusters', cluster, (c) => ({ ...c, connect_timeout: { seconds: '-1' } }));
    const cdsPushes = () => r.events.filter((e) => e.kind === 'push' && e.type === 'CDS').length;
    t.ok(r.cache.setSnapshot(NODE, bad), 'the bad snapshot passes our checks (only Envoy knows)');
    const nack = await waitFor(async () => r.ads.status().types.find((x) => x.type === 'CDS')?.lastNack, {
      timeoutMs: 10_000,
      what: 'the NACK',
    });
    t.match(nack.detail, /duration|connect_timeout|greater than/i, `NACK detail recorded: ${nack.detail.slice(0, 120)}`);
    t.ok(
      r.logs.some((l) => l.includes('MESH_E_XDS_NACK')),
      'logged with its code',
    );
    const pushesAfterNack = cdsPushes();
    t.equal(
      r.cache.acked(NODE).clusters.get(cluster),
      good.versions.clusters.get(cluster),
      'the acknowledged version of the cluster is the previous one, not the rejected one',
    );

    // Envoy keeps the previous cluster and keeps serving.
    const { active } = await activeClusters(r.envoy);
    const live = active.find((c) => (c.cluster as XdsResource | undefined)?.name === cluster)?.cluster as XdsResource | undefined;
    t.same(live?.connect_timeout, '5s', 'Envoy still runs the previous cluster');
    t.equal((await getJson(r.ports.local)).app, 'api', 'traffic still flows');

    // An endpoint-only change goes out; the rejected cluster does not.
    const moreEndpoints: ProxyModel = {
      ...r.model,
      upstreams: r.model.upstreams.map((u) => ({
        ...u,
        instances: [...u.instances, { address: '127.0.0.2', meshPort: r.ports.apiMesh, spiffeId: API, weight: 1, healthy: false }],
      })),
    };
    const edsOnly = withResource(buildSnapshot(moreEndpoints, r.identities), 'clusters', cluster, (c) => ({
      ...c,
      connect_timeout: { seconds: '-1' },
    }));
    r.cache.setSnapshot(NODE, edsOnly);
    await waitFor(async () => ((await healthyHosts(r.envoy, cluster)) === 2 ? true : undefined), { what: 'the new endpoint' });
    t.equal(cdsPushes(), pushesAfterNack, 'the rejected cluster version was not sent again');

    // The next valid change is accepted.
    const fixed = buildSnapshot(moreEndpoints, r.identities);
    r.cache.setSnapshot(NODE, fixed);
    await waitFor(
      async () => {
        const s = r.ads.status().types.find((x) => x.type === 'CDS');
        return s?.ackedAt !== undefined && s.lastNack !== undefined && s.ackedAt > s.lastNack.at ? true : undefined;
      },
      { timeoutMs: 10_000, what: 'an ACK after the NACK' },
    );
    t.ok(cdsPushes() > pushesAfterNack, 'the valid cluster was sent');
    t.equal(r.cache.acked(NODE).clusters.get(cluster), fixed.versions.clusters.get(cluster), 'and acknowledged at its version');
    t.equal((await getJson(r.ports.local)).app, 'api');
  });

  t.test(`${api}: stream cut mid-push (Envoy restarted, same node id) converges, no cluster stuck warming`, async (t) => {
    const r = await rig(t, api);
    await waitFor(() => getJson(r.ports.local).catch(() => undefined), { timeoutMs: 15_000, what: 'traffic' });
    // Change the cluster's definition (a second accepted SPIFFE ID widens its SAN list) and its endpoints, then cut at once.
    const changed: ProxyModel = {
      ...r.model,
      upstreams: r.model.upstreams.map((u) => ({
        ...u,
        instances: [...u.instances, { address: '127.0.0.3', meshPort: r.ports.apiMesh, spiffeId: API_V2, weight: 1, healthy: false }],
        acceptedIdentities: [...u.acceptedIdentities, API_V2],
      })),
    };
    r.cache.setSnapshot(NODE, buildSnapshot(changed, r.identities));
    await r.envoy.stop();
    r.envoy = await startEnvoy({ bootstrap: r.bootstrap });
    const cluster = outboundClusterName('api', 'web');
    await waitFor(
      async () => {
        const { active, warming } = await activeClusters(r.envoy);
        const c = active.find((x) => (x.cluster as XdsResource | undefined)?.name === cluster)?.cluster as XdsResource | undefined;
        return warming.length === 0 && JSON.stringify(c ?? {}).includes(API_V2) ? true : undefined;
      },
      { timeoutMs: 15_000, what: 'the changed cluster active, none warming' },
    );
    t.equal(await healthyHosts(r.envoy, cluster), 2, 'the new Envoy has both endpoints');
    t.equal((await getJson(r.ports.local)).app, 'api', 'traffic flows after the reconnect');

    // And on a live stream: a cluster definition change while connected does not leave it warming.
    r.cache.setSnapshot(NODE, buildSnapshot(r.model, r.identities));
    await waitFor(
      async () => {
        const { active, warming } = await activeClusters(r.envoy);
        const c = active.find((x) => (x.cluster as XdsResource | undefined)?.name === cluster)?.cluster as XdsResource | undefined;
        return warming.length === 0 && !JSON.stringify(c ?? {}).includes(API_V2) ? true : undefined;
      },
      { timeoutMs: 15_000, what: 'the reverted cluster active' },
    );
    t.equal(await healthyHosts(r.envoy, cluster), 1);
    t.equal((await getJson(r.ports.local)).app, 'api');
    t.equal(r.ads.status().streams.length, 1, 'one stream (the old one was closed)');
  });

  t.test(
    `${api}: ADS server restarted (as by an agent restart) while Envoy runs: the new stream acknowledges the unchanged listeners`,
    async (t) => {
      const r = await rig(t, api);
      await waitFor(() => getJson(r.ports.local).catch(() => undefined), { timeoutMs: 15_000, what: 'traffic' });
      await r.ads.close();
      const cache = createSnapshotCache();
      const snapshot = buildSnapshot(r.model, r.identities);
      cache.setSnapshot(NODE, snapshot);
      const events: AdsEvent[] = [];
      r.ads = await startAdsServer({
        socketPath: r.socket,
        cache,
        clock: systemClock,
        log: createLogger({ level: 'error', sink: { write: () => undefined } }),
      });
      r.ads.onEvent((e) => events.push(e));
      t.equal(cache.acked(NODE).listeners.size, 0, 'a new server: nothing acknowledged');
      const inbound = ['web', 'api'].map(inboundListenerName);
      await waitFor(
        async () => (inbound.every((l) => cache.acked(NODE).listeners.get(l) === snapshot.versions.listeners.get(l)) ? true : undefined),
        { timeoutMs: 60_000, what: 'Envoy to reconnect and acknowledge its listeners' },
      );
      t.pass('both inbound listeners acknowledged on the new stream at the versions served');
      const lds = events.filter((e) => e.kind === 'push' && e.type === 'LDS');
      if (api === 'delta') {
        t.same(
          lds.map((e) => (e.kind === 'push' ? e.resources : -1)),
          [0],
          'delta: Envoy named the listeners it kept (initial_resource_versions), nothing was re-sent',
        );
      }
      t.equal((await getJson(r.ports.local)).app, 'api', 'traffic flows');
    },
  );
}
