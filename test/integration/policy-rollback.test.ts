/**
 * NACK rollback of a policy resource with the real parts: control plane
 * (SVIDs), Consul dev agent, the agent as `mesh-agent run` wires it, real
 * Envoy; policy fed straight in by a FakePolicySource.
 *
 * The xDS builders for policy are written elsewhere, so the "config a policy
 * produced" that Envoy rejects is made by a snapshot-cache decorator: while
 * the data plane builds with version 2 of TrafficPolicy api-defaults
 * (DataPlane.policyInForce()), the outbound cluster of api, the service that
 * policy names, gets a connect_timeout Envoy refuses. Then: the NACK is
 * detected, the resource is rolled back to version 1 (the one Envoy
 * accepted), Envoy serves again (web -> api works), status shows rolled-back
 * with Envoy's detail; version 3 is applied again.
 */
import { writeFileSync } from 'node:fs';
import t from 'tap';
import type { DataPlane } from '../../agent/dataplane/data-plane.js';
import { fullyAcked } from '../../agent/dataplane/policy-lifecycle.js';
import type { PolicyResourceStatus } from '../../agent/dataplane/policy-status.js';
import { renderStatus } from '../../agent/status/render.js';
import type { StatusDocument } from '../../agent/status/status.js';
import { createSnapshotCache, type SnapshotCache } from '../../agent/xds/cache/snapshot-cache.js';
import { outboundClusterName } from '../../agent/xds/names.js';
import { FakePolicySource } from '../fakes/policy-source.js';
import { getJson, xfccUri } from '../support/mesh-apps.js';
import { type MeshNode, startMeshNode } from '../support/mesh-node.js';
import { meshTraffic, startMeshPeers, startWebApi } from '../support/mesh-world.js';
import { withResource } from '../support/snapshot-edits.js';
import { httpGet, waitFor } from '../support/wait.js';

t.setTimeout(240_000);

const TD = 'example.org';
const WEB = `spiffe://${TD}/ns/default/sa/web`;
const CLUSTER = outboundClusterName('api', 'web');

const trafficPolicy = (connectTimeout: string) => ({
  apiVersion: 'mesh.v1',
  kind: 'TrafficPolicy',
  metadata: { name: 'api-defaults' },
  spec: { service: 'api', connectTimeout },
});
/** One control plane and one Consul for the file; each test has its own apps, ports and node. */
const peers = await startMeshPeers(t, { trustDomain: TD });

/** The version of api-defaults whose configuration Envoy rejects. */
const BAD = '7s';

/**
 * Serves every snapshot as built, except while `broken()` says the data plane
 * built with the bad policy: then api's outbound cluster gets a negative
 * connect_timeout, which Envoy NACKs.
 */
function policyBreakingCache(broken: () => boolean, inner: SnapshotCache = createSnapshotCache()): SnapshotCache {
  return {
    setSnapshot: (node, snapshot) =>
      inner.setSnapshot(
        node,
        broken() && snapshot.resources.clusters.has(CLUSTER)
          ? withResource(snapshot, 'clusters', CLUSTER, (c) => ({ ...c, connect_timeout: { seconds: '-1' } }))
          : snapshot,
      ),
    current: (node) => inner.current(node),
    watch: (node, watch) => inner.watch(node, watch),
    acked: (node) => inner.acked(node),
  };
}

for (const api of ['delta', 'sotw'] as const)
  t.test(`${api}: a policy whose config Envoy rejects is rolled back; traffic flows; a newer version applies`, async (t) => {
    const node = `vm-policy-${api}`;
    const w = { ...peers, ...(await startWebApi(t)) };
    const files = w.files({ check: true });
    const policy = new FakePolicySource();
    let dp: DataPlane | undefined;
    const cache = policyBreakingCache(
      () =>
        dp
          ?.policyInForce()
          .some((r) => r.name === 'api-defaults' && (r.source as ReturnType<typeof trafficPolicy>).spec.connectTimeout === BAD) ?? false,
    );
    const n: MeshNode = await startMeshNode({
      cp: w.cp,
      consulAddr: w.consul.httpAddr,
      nodeName: node,
      api,
      workloads: { 'web.yaml': files['web.yaml'] as string, 'api.yaml': files['api.yaml'] as string },
      snapshotCache: cache,
      policy,
    });
    t.teardown(() => n.stop());
    dp = n.agent.dataPlane;
    if (dp === undefined) throw new Error('no data plane');
    const plane = dp;

    const status = async (): Promise<StatusDocument> => JSON.parse((await httpGet(`http://${n.agent.statusAddress}/status`)).body);
    const resource = async (): Promise<PolicyResourceStatus | undefined> =>
      (await status()).dataPlane?.policy.resources.find((r) => r.name === 'api-defaults');
    const envoyRunsAll = () => {
      const served = cache.current(node);
      return served !== undefined && fullyAcked(served.snapshot, cache.acked(node)) ? served.version : undefined;
    };

    // Version 1: applied and fully acknowledged by Envoy.
    policy.set([trafficPolicy('2s')]);
    await meshTraffic(w.ports.apiLocal, { timeoutMs: 40_000, what: 'web -> api through the mesh' });
    const v1 = await waitFor(async () => ((await resource())?.state === 'applied' ? resource() : undefined), {
      timeoutMs: 20_000,
      what: 'api-defaults version 1 applied',
    });
    t.equal(v1?.version, 1);
    const acceptedSnapshot = await waitFor(async () => envoyRunsAll(), { timeoutMs: 20_000, what: 'Envoy to acknowledge every resource' });

    // Version 2: its configuration is rejected by Envoy, and rolled back.
    const sentAt = Date.now();
    policy.set([trafficPolicy(BAD)]);
    const rolled = await waitFor(async () => ((await resource())?.state === 'rolled-back' ? resource() : undefined), {
      timeoutMs: 20_000,
      what: 'api-defaults rolled back',
    });
    const rolledMs = Date.now() - sentAt;
    t.equal(rolled?.version, 2, 'status names the rejected version');
    t.equal(rolled?.servedVersion, 1, 'and the version served instead');
    t.match(rolled?.reason, /^Envoy rejected the configuration it produced \([\s\S]*duration[\s\S]*\); serving version 1 instead$/i);
    t.pass(`NACK detected and api-defaults rolled back ${rolledMs} ms after version 2 arrived`);
    t.same(
      plane.policyInForce().map((r) => `${r.name}@${r.version}`),
      ['api-defaults@1'],
      'the data plane builds with version 1 again',
    );
    t.ok(
      n.logs.some((l) => l.includes('MESH_E_XDS_NACK') && l.includes('rolled back') && l.includes('TrafficPolicy/api-defaults')),
      'the rollback is logged with the resource',
    );

    // Envoy serves again: it acknowledges the rolled-back snapshot (the content it accepted before).
    const back = await waitFor(async () => envoyRunsAll(), { timeoutMs: 20_000, what: 'Envoy to acknowledge the rolled-back snapshot' });
    t.equal(back, acceptedSnapshot, 'the rolled-back snapshot is the one Envoy accepted with version 1');
    const answer = await getJson(w.ports.apiLocal);
    t.equal(answer.app, 'api', 'web -> api works after the rollback');
    t.equal(xfccUri(answer.xfcc), WEB);
    const doc = await waitFor(
      async () => {
        const d = await status();
        return d.problems.some((p) => p.startsWith('Envoy rejected')) ? undefined : d;
      },
      { timeoutMs: 20_000, what: 'the NACK to be answered by an ACK' },
    );
    const text = renderStatus(doc);
    t.match(
      text,
      /TrafficPolicy\/api-defaults\s+2 \(serving 1\)\s+rolled-back\s+Envoy rejected the configuration it produced/,
      'mesh-agent status shows it',
    );
    if (process.env.POLICY_STATUS_SAMPLE)
      writeFileSync(process.env.POLICY_STATUS_SAMPLE, `${text}\n${JSON.stringify(doc.dataPlane, null, 2)}\n`);
    t.same(
      doc.problems.filter((p) => p.startsWith('policy ')),
      [`policy TrafficPolicy/api-defaults version 2 rolled-back: ${rolled?.reason?.replace(/\s+/g, ' ').trim()}`],
      'the rollback is the problem status reports',
    );

    // The same version again (another resource changed): it stays rolled back, nothing is NACKed again.
    const nacks = plane.status().xds.counters[api].nacks;
    policy.set([
      trafficPolicy(BAD),
      {
        apiVersion: 'mesh.v1',
        kind: 'AuthorizationPolicy',
        metadata: { name: 'api-open' },
        spec: { target: { service: 'api' }, defaultAction: 'allow' },
      },
    ]);
    await plane.settled();
    t.equal((await resource())?.state, 'rolled-back', 'unchanged: still rolled back');
    t.equal(plane.status().xds.counters[api].nacks, nacks, 'no new NACK: the rejected version was not built again');

    // Version 3: applied again, Envoy accepts it, status is healthy.
    policy.set([trafficPolicy('3s')]);
    const v3 = await waitFor(async () => ((await resource())?.state === 'applied' ? resource() : undefined), {
      timeoutMs: 20_000,
      what: 'api-defaults version 3 applied',
    });
    t.equal(v3?.version, 3);
    await waitFor(async () => envoyRunsAll(), { timeoutMs: 20_000, what: 'Envoy to acknowledge version 3' });
    const healthy = await waitFor(async () => ((await status()).healthy ? status() : undefined), {
      timeoutMs: 20_000,
      what: 'a healthy status',
    });
    t.same(healthy.problems, []);
    t.equal((await getJson(w.ports.apiLocal)).app, 'api', 'web -> api works with version 3');
  });
