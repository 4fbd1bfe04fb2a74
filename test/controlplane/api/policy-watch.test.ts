/**
 * Policy.Watch on a real control plane (TLS, node mTLS, SQLite for nodes) with
 * the in-memory policy store: a joined node gets what concerns it and every
 * change; resume at the current revision sends nothing; a client without a
 * node certificate, and a revoked node, are refused; a node revoked while
 * streaming has its stream ended.
 */
import * as grpc from '@grpc/grpc-js';
import t, { type Test } from 'tap';
import type { ControlPlaneClient, PolicyWatchRequest } from '../../../agent/identity/cp-client.js';
import type { MeshError } from '../../../lib/errors.js';
import type { PolicySet } from '../../../lib/policy/schema.js';
import { contract } from '../../../lib/proto/contract.js';
import { MemoryPolicyStore } from '../../fakes/policy-store.js';
import { joinedClient, startTestControlPlane } from '../../support/controlplane.js';
import { tempDir } from '../../support/temp-dir.js';
import { waitFor } from '../../support/wait.js';
import { authorization, serviceIdentity, trafficPolicy } from '../policy/policy-docs.js';

t.setTimeout(120_000);

interface Watching {
  opened: boolean;
  updates: PolicySet[];
  error?: MeshError;
  cancel: () => void;
}

function watch(client: ControlPlaneClient, request: PolicyWatchRequest): Watching {
  const w: Watching = { opened: false, updates: [], cancel: () => undefined };
  w.cancel = client.watchPolicy(request, {
    onOpen: () => {
      w.opened = true;
    },
    onUpdate: (set) => w.updates.push(set),
    onError: (err) => {
      w.error = err;
    },
  });
  return w;
}

const until = (what: string, fn: () => boolean) => waitFor(async () => (fn() ? true : undefined), { timeoutMs: 15_000, what });

async function setup(t: Test) {
  const store = new MemoryPolicyStore();
  store.apply([serviceIdentity('api-id', 'api'), trafficPolicy('db-tp', 'db')], 'admin');
  const tcp = await startTestControlPlane({ policies: store });
  const clients: ControlPlaneClient[] = [];
  t.teardown(async () => {
    for (const c of clients) c.close();
    await tcp.stop();
  });
  const join = async (node: string) => {
    const client = await joinedClient(tcp, node, [], await tempDir(t));
    clients.push(client);
    return client;
  };
  return { store, tcp, join };
}

const API = { services: ['api'], spiffeIds: [] };

t.test('a node gets the set that concerns it, then each change', async (t) => {
  const { store, join } = await setup(t);
  const client = await join('n1');
  const w = watch(client, { revision: 0, ...API });
  await until('the first set', () => w.updates.length === 1);
  t.equal(w.updates[0]?.revision, 1);
  t.same(
    w.updates[0]?.resources.map((r) => [r.kind, r.name, r.version]),
    [['ServiceIdentity', 'api-id', 1]],
  );
  t.match(w.updates[0]?.resources[0]?.source, { kind: 'ServiceIdentity', spec: { service: 'api' } });

  store.apply([authorization('api-authz', { service: 'api' })], 'admin');
  await until('revision 2', () => w.updates.length === 2);
  t.equal(w.updates[1]?.revision, 2);
  t.equal(w.updates[1]?.resources.length, 2);
  store.apply([trafficPolicy('db-tp', 'db', '9s')], 'admin');
  store.apply([serviceIdentity('api-id', 'api', ['spiffe://example.org/ns/default/sa/api2'])], 'admin');
  await until('revision 4', () => w.updates.length === 3);
  t.same(
    w.updates.map((u) => u.revision),
    [1, 2, 4],
    'revision 3 changed nothing api cares about',
  );
  t.equal(w.error, undefined);
  w.cancel();
});

t.test('resume at the current revision: the watch opens and nothing is sent until a change', async (t) => {
  const { store, join } = await setup(t);
  const client = await join('n1');
  const w = watch(client, { revision: 1, ...API });
  await until('the watch opens', () => w.opened);
  t.same(w.updates, [], 'nothing sent at the current revision');
  store.apply([authorization('api-authz', { service: 'api' })], 'admin');
  await until('revision 2', () => w.updates.length === 1);
  t.equal(w.updates[0]?.revision, 2);
  w.cancel();
});

t.test('a client without a node certificate is refused', async (t) => {
  const { tcp } = await setup(t);
  const credentials = grpc.credentials.createSsl(Buffer.from(tcp.bundlePem()), null, null, { checkServerIdentity: () => undefined });
  const client = new (contract().Policy)(tcp.cp.address, credentials, { 'grpc.ssl_target_name_override': 'mesh-controlplane' });
  t.teardown(() => client.close());
  const status = await new Promise<grpc.StatusObject>((resolve) => {
    const stream = (client as unknown as Record<string, (r: unknown) => grpc.ClientReadableStream<unknown>>).Watch?.({
      revision: 0,
      services: ['api'],
    });
    stream?.on('data', () => t.fail('no data for an unauthenticated client'));
    stream?.on('error', () => undefined);
    stream?.on('status', resolve);
  });
  t.equal(status.code, grpc.status.UNAUTHENTICATED);
  t.same(status.metadata.get('mesh-error-code'), ['MESH_E_UNAUTHENTICATED']);
});

t.test('a revoked node is refused, and a node revoked while streaming has its stream ended', async (t) => {
  const { tcp, join } = await setup(t);
  const streaming = await join('n1');
  const w = watch(streaming, { revision: 0, ...API });
  await until('the first set', () => w.updates.length === 1);
  t.equal(tcp.cp.policyFanout.stats().streams, 1);
  tcp.cp.identity.revoke('n1');
  await until('the stream ends', () => w.error !== undefined);
  t.equal(w.error?.code, 'MESH_E_NODE_REVOKED');
  t.equal(tcp.cp.policyFanout.stats().streams, 0);

  const again = watch(streaming, { revision: 0, ...API });
  await until('the new watch is refused', () => again.error !== undefined);
  t.equal(again.error?.code, 'MESH_E_NODE_REVOKED');
  t.same(again.updates, []);
});
