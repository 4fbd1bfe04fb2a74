/**
 * Policy distribution end to end: a real control plane (its SQLite policy
 * store, applies through the real `meshctl policy apply`), a Consul dev
 * agent, and two agents wired as `mesh-agent run` wires them (real Envoy
 * each), with the default policy source: Policy.Watch over the node's mTLS
 * connection.
 * - One apply reaches both agents' Envoys: /status shows the new revision from
 *   the control plane, each got only what concerns its workloads, keeps it on
 *   disk (0600), and its Envoy runs what the policy says (the api node's
 *   inbound RBAC, the web node's rate limit), while web -> api still flows.
 * - With the control plane stopped, both agents restarted on their state
 *   folders serve the last policy from disk (status: origin disk), and their
 *   Envoys run it again.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { loadPolicyCache, policyCachePath } from '../../agent/policy/policy-cache.js';
import type { StatusDocument } from '../../agent/status/status.js';
import { authorization, rateLimit, serviceIdentity } from '../controlplane/policy/policy-docs.js';
import { startConsulDev } from '../support/consul.js';
import { startTestControlPlane } from '../support/controlplane.js';
import { xfccUri } from '../support/mesh-apps.js';
import { type MeshNode, startMeshNode } from '../support/mesh-node.js';
import { meshTraffic, startWebApi } from '../support/mesh-world.js';
import { applyPolicies } from '../support/policy.js';
import { tempDir } from '../support/temp-dir.js';
import { httpGet, waitFor } from '../support/wait.js';

t.setTimeout(300_000);

const TD = 'example.org';
const WEB = `spiffe://${TD}/ns/default/sa/web`;

async function status(n: MeshNode): Promise<StatusDocument> {
  const { body } = await httpGet(`http://${n.agent.statusAddress}/status`);
  return JSON.parse(body) as StatusDocument;
}

const policyOf = async (n: MeshNode) => (await status(n)).policy;

/** What the policy makes of Envoy's config, as its admin API dumps it. */
const envoyHas = (n: MeshNode, needle: string, what: string) =>
  waitFor(async () => ((await n.admin('/config_dump')).includes(needle) ? true : undefined), { timeoutMs: 30_000, what });

t.test('one apply reaches both agents; a restart without the control plane serves it from disk', async (t) => {
  const cp = await startTestControlPlane({ trustDomain: TD });
  let cpStopped = false;
  t.teardown(async () => {
    if (!cpStopped) await cp.stop();
  });
  const consul = await startConsulDev();
  t.teardown(() => consul.stop());
  const apps = await startWebApi(t);
  const files = apps.files({ check: true });
  const dirA = await tempDir(t);
  const dirB = await tempDir(t);
  const start = async (name: string, dir: string, file: 'web.yaml' | 'api.yaml') => {
    const n = await startMeshNode({
      cp,
      consulAddr: consul.httpAddr,
      nodeName: name,
      workloads: { [file]: files[file] as string },
      dir,
    });
    t.teardown(() => n.stop());
    return n;
  };
  let a = await start('pd-a', dirA, 'web.yaml');
  const b = await start('pd-b', dirB, 'api.yaml');
  for (const n of [a, b])
    await waitFor(async () => ((await policyOf(n))?.connected ? true : undefined), { timeoutMs: 60_000, what: 'the policy watch open' });
  t.match(await policyOf(a), { revision: 0, origin: 'none', connected: true });

  const applied = await applyPolicies(
    cp,
    JSON.stringify([
      serviceIdentity('api-id', 'api'),
      authorization('api-authz', { service: 'api' }),
      rateLimit('web-rl', { spiffeId: WEB }),
    ]),
  );
  t.equal(applied.revision, 1);
  for (const n of [a, b])
    await waitFor(async () => ((await policyOf(n))?.revision === 1 ? true : undefined), {
      timeoutMs: 30_000,
      what: 'revision 1 in the agent status',
    });
  for (const n of [a, b]) t.match(await policyOf(n), { revision: 1, origin: 'controlplane', connected: true, receivedAt: String });

  const names = async (dir: string) => {
    const cached = await loadPolicyCache(policyCachePath(path.join(dir, 'data')));
    return { revision: cached?.set.revision, names: cached?.set.resources.map((r) => `${r.kind}/${r.name}`).sort() };
  };
  const onDisk = (dir: string, revision: number) =>
    waitFor(async () => ((await names(dir)).revision === revision ? names(dir) : undefined), { what: `revision ${revision} on disk` });
  t.same(
    await onDisk(dirA, 1),
    { revision: 1, names: ['AuthorizationPolicy/api-authz', 'RateLimit/web-rl', 'ServiceIdentity/api-id'] },
    'web calls api and is the rate limit target',
  );
  t.same(await onDisk(dirB, 1), { revision: 1, names: ['AuthorizationPolicy/api-authz', 'ServiceIdentity/api-id'] }, 'api: not web');
  t.equal((await stat(policyCachePath(path.join(dirA, 'data')))).mode & 0o777, 0o600);
  t.ok(await envoyHas(b, '"api-authz.web"', "the api node's RBAC policy"), "the api node's Envoy enforces api-authz");
  t.ok(await envoyHas(a, '"envoy.filters.http.local_ratelimit"', "the web node's rate limit"), "the web node's Envoy runs web-rl");
  t.equal(xfccUri((await meshTraffic(apps.ports.apiLocal)).xfcc), WEB, 'web, allowed by api-authz, reaches api');

  // A second change: only what concerns the agent changes its set.
  await applyPolicies(cp, JSON.stringify(rateLimit('web-rl', { spiffeId: WEB }, 20)));
  await waitFor(async () => ((await policyOf(a))?.revision === 2 ? true : undefined), { what: 'revision 2 on web node' });
  t.equal((await policyOf(b))?.revision, 1, 'the api node was not concerned');
  t.match((await onDisk(dirA, 2)).names, ['AuthorizationPolicy/api-authz', 'RateLimit/web-rl', 'ServiceIdentity/api-id']);
  t.ok(await envoyHas(a, '"tokens_per_fill": 20', 'the new rate in Envoy'), "the web node's Envoy runs web-rl version 2");

  // The control plane goes away; the web node restarts on its state folder.
  await a.stop();
  await b.stop();
  cpStopped = true;
  await cp.stop();
  a = await start('pd-a', dirA, 'web.yaml');
  const b2 = await start('pd-b', dirB, 'api.yaml');
  const restarted = await policyOf(a);
  t.match(restarted, { revision: 2, origin: 'disk', connected: false }, 'served from disk at start');
  t.equal(a.agent.dataPlane?.status().policy?.revision, 2, "the data plane's policy source holds revision 2");
  await waitFor(async () => ((await policyOf(a))?.lastError !== undefined ? true : undefined), {
    timeoutMs: 30_000,
    what: 'the watch failing while the control plane is down',
  });
  t.match((await policyOf(a))?.lastError, /MESH_E_CONTROLPLANE_UNAVAILABLE/);
  t.equal((await policyOf(a))?.origin, 'disk', 'still serving the disk copy');
  t.ok(await envoyHas(a, '"tokens_per_fill": 20', 'the rate limit from disk'), "the restarted web node's Envoy runs web-rl version 2");
  t.ok(await envoyHas(b2, '"api-authz.web"', 'the RBAC policy from disk'), "the restarted api node's Envoy enforces api-authz");
  t.equal(xfccUri((await meshTraffic(apps.ports.apiLocal)).xfcc), WEB, 'and web still reaches api, with the control plane down');
});
