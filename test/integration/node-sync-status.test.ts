/**
 * Proxy sync status with the real parts: a control plane (in process: real
 * gRPC over mTLS, SQLite, admin socket), a Consul dev agent, two
 * `mesh-agent run` processes with the provisioned Envoy (vm-web calls api on
 * vm-api), and the built `meshctl`.
 *
 * - Both nodes report and show SYNCED, with last seen, agent and Envoy
 *   versions and the earliest SVID expiry; `meshctl node status` details the
 *   per-type versions, workloads and SVIDs.
 * - A TrafficRoute whose path regex uses a lookahead passes our validation
 *   (the schema takes any RE2 text; JavaScript accepts the lookahead) but
 *   Envoy's RE2 refuses it: vm-web's RDS is NACKed, the agent rolls the
 *   route back, and vm-web shows NACK naming the resource; vm-api, which does
 *   not call api, stays SYNCED. A fixed route brings vm-web back to SYNCED.
 * - vm-api's agent is killed with SIGKILL: no more reports, and after
 *   nodeStatus.staleAfter (3 s here) it shows STALE while vm-web stays SYNCED.
 */
import { appendFileSync, writeFileSync } from 'node:fs';
import t from 'tap';
import type { NodeInfoWire, NodeStatusDetailWire } from '../../controlplane/cli/node-commands.js';
import { packageVersion } from '../../lib/version.js';
import { agentStatus } from '../support/agent-process.js';
import { killIfSame, processRef } from '../support/child.js';
import { connectAdmin } from '../support/controlplane.js';
import { meshHost, meshTraffic, runAgent, startMeshPeers, startWebApi } from '../support/mesh-world.js';
import { applyPolicies, meshctl } from '../support/policy.js';
import { waitFor } from '../support/wait.js';

t.setTimeout(240_000);

const route = (regex: string) => `apiVersion: mesh.v1
kind: TrafficRoute
metadata:
  name: api
spec:
  service: api
  http:
    - name: v1
      match:
        path:
          regex: "${regex}"
      destinations:
        - weight: 1
      timeout: 5s
    - name: all
      destinations:
        - weight: 1
`;

t.test('SYNCED for healthy agents, NACK after a config Envoy rejects, STALE after SIGKILL', async (t) => {
  const peers = await startMeshPeers(t, { staleAfter: '3s' });
  const w = await startWebApi(t);
  const files = w.files({ check: true });
  const webHost = await meshHost(t, {
    join: peers.join,
    consulAddr: peers.consul.httpAddr,
    nodeName: 'vm-web',
    workloads: { 'web.yaml': files['web.yaml'] as string },
  });
  const apiHost = await meshHost(t, {
    join: peers.join,
    consulAddr: peers.consul.httpAddr,
    nodeName: 'vm-api',
    workloads: { 'api.yaml': files['api.yaml'] as string },
  });
  const webAgent = runAgent(t, webHost);
  const apiAgent = runAgent(t, apiHost);
  await meshTraffic(w.ports.apiLocal, { agent: webAgent, what: 'web -> api across the two agents' });

  const admin = connectAdmin(peers.cp.dataDir);
  t.teardown(() => admin.close());
  const nodes = async () => (await admin.call<{ nodes: NodeInfoWire[] }>('ListNodes')).nodes;
  const byName = async (name: string) => (await nodes()).find((n) => n.name === name);
  const until = (name: string, state: string, reason = /(?:)/, timeoutMs = 30_000) =>
    waitFor(
      async () => {
        const n = await byName(name);
        return n?.sync_state === state && reason.test(n.sync_reason) ? n : undefined;
      },
      {
        timeoutMs,
        intervalMs: 200,
        what: `${name} to show ${state}`,
        fatal: () => (webAgent.exited() ? `vm-web's agent exited:\n${webAgent.output().slice(-2000)}` : undefined),
      },
    );

  // --- SYNCED ---------------------------------------------------------------
  const web = await until('vm-web', 'SYNCED');
  await until('vm-api', 'SYNCED');
  t.equal(web.agent_version, packageVersion(), 'the agent version');
  t.match(web.envoy_version, /^1\.40\./, 'the Envoy version');
  t.ok(web.earliest_svid_expiry_ms > Date.now(), 'the earliest SVID expiry is in the future');
  t.ok(web.last_report_at_ms > 0 && web.last_seen_at_ms > 0, 'last seen, in memory and in SQLite');

  const table = await meshctl(peers.cp, ['node', 'list']);
  t.equal(table.code, 0, table.stderr);
  t.match(table.stdout, /^NAME\s+STATUS\s+SYNC\s+LAST SEEN\s+AGENT\s+ENVOY\s+SVID EXPIRES\s+ALLOWED IDS\n/);
  t.match(
    table.stdout,
    new RegExp(`\\nvm-api\\s+active\\s+SYNCED\\s+\\d+s ago\\s+${packageVersion().replace(/\./g, '\\.')}\\s+1\\.40\\.\\d+\\s+20\\d\\d-`),
  );
  t.match(table.stdout, /\nvm-web\s+active\s+SYNCED\s+\d+s ago\s+/);
  const listed = await meshctl(peers.cp, ['node', 'list', '--json']);
  t.match(JSON.parse(listed.stdout), [
    { name: 'vm-api', sync_state: 'SYNCED' },
    { name: 'vm-web', sync_state: 'SYNCED' },
  ]);

  const detailed = await meshctl(peers.cp, ['node', 'status', 'vm-web', '--json']);
  t.equal(detailed.code, 0, detailed.stderr);
  const detail = JSON.parse(detailed.stdout) as NodeStatusDetailWire;
  t.same(
    detail.report?.xds.map((x) => [x.type, x.in_sync, x.acked_version !== '']),
    ['CDS', 'EDS', 'LDS', 'RDS', 'SDS'].map((type) => [type, true, true]),
    'every type acknowledged at the version the agent built',
  );
  t.match(detail.report?.workloads, [{ name: 'web', spiffe_id: 'spiffe://example.org/ns/default/sa/web', data_plane: 'serving' }]);
  t.ok((detail.report?.node_svid_not_after_ms ?? 0) > Date.now(), 'the node SVID expiry');
  t.equal(detail.report?.policy_revision, detail.expected_policy_revision, 'the policy revision the control plane sent');
  t.comment(`a report of one workload: ${JSON.stringify(detail.report).length} bytes of JSON`);
  // web's health is its Consul check, which passes a moment after Envoy serves its mesh port: wait for the report that says so.
  const text = await waitFor(
    async () => {
      const r = await meshctl(peers.cp, ['node', 'status', 'vm-web']);
      return /\nweb\s+passing\s/.test(r.stdout) ? r : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 250, what: "vm-web's report to show web's check passing" },
  );
  t.match(text.stdout, /^node\s+vm-web \(spiffe:\/\/example\.org\/mesh\/node\/vm-web\)\n/);
  t.match(text.stdout, /\nsync\s+SYNCED\n/);
  t.match(text.stdout, /\nXDS\s+IN SYNC\s+RESOURCES\s+ACKED VERSION\s+ACKED AT\s+LAST NACK\n(?:[CELRS]DS\s+yes\s+.*\n){5}/);
  t.match(text.stdout, /\nweb\s+passing\s+serving\s+ready\s+20\d\d-/);
  t.match(text.stdout, /\npolicy\s+revision 0 \(the control plane sent 0\)\n/);

  // --- NACK -----------------------------------------------------------------
  // A lookahead: JavaScript (and our schema) accept it, Envoy's RE2 does not.
  const appliedAt = Date.now();
  const bad = await applyPolicies(peers.cp, route('^/v1(?=/)'));
  t.same(bad.changes, [{ kind: 'TrafficRoute', name: 'api', action: 'created' }], 'the route passes validation');
  // First the pending NACK of RDS, then (once the agent rolled the route back and Envoy acknowledged that) the refused resource.
  const nacked = await until('vm-web', 'NACK', /^policy TrafficRoute\/api version 1 rolled-back: /);
  t.comment(`apply of the bad route -> NACK shown by the control plane: ${Date.now() - appliedAt} ms`);
  t.match(nacked.sync_reason, /invalid perl operator: \(\?=/, "the reason carries Envoy's detail");
  const nackDetail = JSON.parse((await meshctl(peers.cp, ['node', 'status', 'vm-web', '--json'])).stdout) as NodeStatusDetailWire;
  const rds = nackDetail.report?.xds.find((x) => x.type === 'RDS');
  t.match(rds?.last_nack?.detail, /invalid perl operator/, "Envoy's NACK detail is reported");
  t.match(nackDetail.report?.policy_rejections, [{ kind: 'TrafficRoute', name: 'api', version: 1 }]);
  const nackText = await meshctl(peers.cp, ['node', 'status', 'vm-web']);
  t.match(nackText.stdout, /\nsync\s+NACK: policy TrafficRoute\/api version 1 rolled-back: /);
  t.match(nackText.stdout, /\nPOLICY\s+VERSION\s+STATE\s+REASON\nTrafficRoute\/api\s+1\s+/);
  const during = await meshctl(peers.cp, ['node', 'list']);
  t.match(during.stdout, /\nvm-web\s+active\s+NACK\s+/, 'meshctl node list shows NACK');
  // NODE_STATUS_SAMPLE=FILE keeps what meshctl printed, for docs/operations/proxy-status.md.
  if (process.env.NODE_STATUS_SAMPLE) writeFileSync(process.env.NODE_STATUS_SAMPLE, `${during.stdout}\n${nackText.stdout}\n`);
  t.equal((await byName('vm-api'))?.sync_state, 'SYNCED', 'vm-api does not call api: not concerned');
  t.equal((await meshTraffic(w.ports.apiLocal)).app, 'api', 'traffic flows on the rolled-back configuration');

  await applyPolicies(peers.cp, route('^/v1/.*'));
  await until('vm-web', 'SYNCED');
  t.pass('a route Envoy accepts brings vm-web back to SYNCED');

  // --- STALE ----------------------------------------------------------------
  // Its Envoy as it runs now: by teardown its pid may name another test's process.
  const envoy = processRef((await agentStatus<{ envoy?: { pid?: number } }>(apiHost.fx.statusAddr)).envoy?.pid);
  const killedAt = Date.now();
  process.kill(apiAgent.pid, 'SIGKILL');
  await waitFor(async () => (apiAgent.exited() ? true : undefined), { timeoutMs: 10_000, what: "vm-api's agent to die" });
  // Its Envoy outlives it (the agent had no chance to stop it): ended here, by its pid.
  t.teardown(async () => {
    killIfSame(envoy, 'SIGKILL');
  });
  const stale = await until('vm-api', 'STALE', /(?:)/, 20_000);
  t.match(stale.sync_reason, /^last report \d+s ago \(staleAfter 3s\)$/);
  t.comment(`SIGKILL -> STALE (staleAfter 3s): ${Date.now() - killedAt} ms`);
  t.equal((await byName('vm-web'))?.sync_state, 'SYNCED', 'the live agent stays SYNCED');
  const after = await meshctl(peers.cp, ['node', 'list']);
  t.match(after.stdout, /\nvm-api\s+active\s+STALE\s+\d+s ago\s+/, 'meshctl node list shows STALE');
  if (process.env.NODE_STATUS_SAMPLE) appendFileSync(process.env.NODE_STATUS_SAMPLE, `${after.stdout}\n`);
  killIfSame(envoy, 'SIGKILL');
});
