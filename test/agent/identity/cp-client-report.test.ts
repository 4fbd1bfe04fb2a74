/**
 * The agent's NodeStatus.Report against a control plane older than it: a
 * TLS gRPC server with the control plane's SPIFFE ID that serves none of
 * the NodeStatus service (as before this version). The call ends with
 * MESH_E_CONTROLPLANE_UNSUPPORTED, which the reporter treats as "ask again
 * each heartbeat" (sync-reporter.test.ts), not as a failure.
 */
import * as grpc from '@grpc/grpc-js';
import t from 'tap';
import { connectControlPlane } from '../../../agent/identity/cp-client.js';
import { report } from '../../support/node-report.js';
import { createTestCa } from '../../support/test-ca.js';

t.test('a control plane without NodeStatus: MESH_E_CONTROLPLANE_UNSUPPORTED', async (t) => {
  const ca = await createTestCa('example.org');
  const server = ca.issue('spiffe://example.org/mesh/controlplane');
  const node = ca.issue('spiffe://example.org/mesh/node/vm1');
  const old = new grpc.Server();
  const port = await new Promise<number>((resolve, reject) =>
    old.bindAsync(
      '127.0.0.1:0',
      grpc.ServerCredentials.createSsl(
        Buffer.from(ca.bundlePem),
        [{ private_key: Buffer.from(server.keyPem), cert_chain: Buffer.from(server.chainPem) }],
        true,
      ),
      (err, p) => (err ? reject(err) : resolve(p)),
    ),
  );
  t.teardown(() => old.forceShutdown());
  const client = connectControlPlane({
    address: `127.0.0.1:${port}`,
    trustDomain: 'example.org',
    bundlePem: ca.bundlePem,
    node: { chainPem: node.chainPem, keyPem: node.keyPem },
  });
  t.teardown(() => client.close());
  await t.rejects(client.reportStatus?.(report()) ?? Promise.reject(new Error('no reportStatus')), {
    code: 'MESH_E_CONTROLPLANE_UNSUPPORTED',
    message: /does not take status reports/,
  });
});
