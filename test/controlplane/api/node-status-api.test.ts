/**
 * NodeStatus.Report on a real control plane (TLS, node mTLS, SQLite): a
 * joined node's report is filed under the node its certificate names and
 * answered with the heartbeat interval; ListNodes and GetNodeStatus show it;
 * a client without a node certificate and a revoked node are refused; an
 * unknown name in GetNodeStatus is MESH_E_NODE_UNKNOWN.
 */
import * as grpc from '@grpc/grpc-js';
import t from 'tap';
import { contract } from '../../../lib/proto/contract.js';
import { anonymousClient, connectAdmin, joinedClient, startTestControlPlane } from '../../support/controlplane.js';
import { report } from '../../support/node-report.js';
import { tempDir } from '../../support/temp-dir.js';

t.setTimeout(120_000);

t.test('a report is filed under the node of the certificate; refused without one and for a revoked node', async (t) => {
  const tcp = await startTestControlPlane({ staleAfter: '6s' });
  t.teardown(() => tcp.stop());
  const client = await joinedClient(tcp, 'vm1', [], await tempDir(t));
  t.teardown(() => client.close());
  const admin = connectAdmin(tcp.dataDir);
  t.teardown(() => admin.close());

  const answer = await client.reportStatus?.(report({ agent_version: '9.9.9', policy_revision: 0 }));
  t.same(answer, { heartbeatMs: 2_000 }, 'a third of staleAfter');
  const { nodes } = await admin.call<{ nodes: Array<Record<string, unknown>> }>('ListNodes');
  t.match(nodes, [{ name: 'vm1', sync_state: 'SYNCED', sync_reason: '', agent_version: '9.9.9', envoy_version: '1.40.0' }]);
  t.ok(Number(nodes[0]?.last_report_at_ms) > 0 && Number(nodes[0]?.last_seen_at_ms) > 0, 'seen, in memory and in SQLite');
  const detail = await admin.call<Record<string, unknown>>('GetNodeStatus', { name: 'vm1' });
  t.match(detail, { node: { name: 'vm1' }, report: { agent_version: '9.9.9' }, stale_after_ms: 6_000, policy_watch_open: false });
  await t.rejects(admin.call('GetNodeStatus', { name: 'nope' }), { code: 'MESH_E_NODE_UNKNOWN' });

  // Without a client certificate: refused by the server (the agent's client would not even send it).
  const credentials = grpc.credentials.createSsl(Buffer.from(tcp.bundlePem()), null, null, { checkServerIdentity: () => undefined });
  const raw = new (contract().NodeStatus)(tcp.cp.address, credentials, { 'grpc.ssl_target_name_override': 'mesh-controlplane' });
  t.teardown(() => raw.close());
  const refused = await new Promise<grpc.ServiceError | null>((resolve) =>
    (raw as unknown as Record<string, (r: unknown, cb: (e: grpc.ServiceError | null) => void) => void>).Report?.(report(), resolve),
  );
  t.equal(refused?.code, grpc.status.UNAUTHENTICATED);
  t.same(refused?.metadata.get('mesh-error-code'), ['MESH_E_UNAUTHENTICATED']);
  const anonymous = anonymousClient(tcp);
  t.teardown(() => anonymous.close());
  await t.rejects(anonymous.reportStatus?.(report()) ?? Promise.reject(new Error('no reportStatus')), { code: 'MESH_E_NOT_JOINED' });

  tcp.cp.identity.revoke('vm1');
  await t.rejects(client.reportStatus?.(report()) ?? Promise.reject(new Error('no reportStatus')), { code: 'MESH_E_NODE_REVOKED' });
  const after = await admin.call<{ nodes: Array<Record<string, unknown>> }>('ListNodes');
  t.match(after.nodes, [{ name: 'vm1', status: 'revoked', sync_state: '', agent_version: '' }], 'a revoked node has no sync state');
});
