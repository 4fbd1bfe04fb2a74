/**
 * ConsulClient.meshServices against the real Consul: the server-side filter
 * `"mesh_spiffe_id" in ServiceMeta` lists exactly the services with a mesh
 * instance, and a blocking query on the list wakes when a mesh service comes.
 */
import Consul from 'consul';
import t from 'tap';
import { createConsulHttpClient } from '../../agent/discovery/consul-http.js';
import { startConsulDev } from '../support/consul.js';

t.setTimeout(180_000);

t.test('the mesh service list: filtered by Consul, blocking', async (t) => {
  const dev = await startConsulDev();
  t.teardown(() => dev.stop());
  const raw = new Consul({ host: '127.0.0.1', port: dev.httpPort });
  const register = (name: string, id: string, meta: Record<string, string>) =>
    raw.agent.service.register({ name, id, address: '127.0.0.1', port: 8080, meta });
  await register('api', 'api-1', { mesh_spiffe_id: 'spiffe://example.org/ns/default/sa/api' });
  await register('legacy', 'legacy-1', {});
  // A service with one mesh and one plain instance is a mesh service.
  await register('mixed', 'mixed-1', {});
  await register('mixed', 'mixed-2', { mesh_spiffe_id: 'spiffe://example.org/ns/default/sa/mixed' });
  // An empty value is still the key; the model then finds no SPIFFE ID and makes no chain of it.
  await register('empty', 'empty-1', { mesh_spiffe_id: '' });

  const client = createConsulHttpClient({
    mode: 'agent',
    address: dev.httpAddr,
    token: '',
    datacenter: '',
    nodeName: dev.nodeName,
    nodeAddress: '127.0.0.1',
  });
  const first = await client.meshServices({ index: 0, waitMs: 0 });
  t.strictSame(first.names, ['api', 'empty', 'mixed'], 'no legacy, no consul');
  t.ok(first.index > 0, 'an index to block on');

  const blocked = client.meshServices({ index: first.index, waitMs: 30_000 });
  await register('db', 'db-1', { mesh_spiffe_id: 'spiffe://example.org/ns/default/sa/db' });
  let next = await blocked;
  t.ok(next.index > first.index, 'the blocking query returned on a change');
  // Another catalog write may wake it first: block again until the list has db (each answer is a change).
  for (let i = 0; i < 5 && !next.names.includes('db'); i++) next = await client.meshServices({ index: next.index, waitMs: 30_000 });
  t.strictSame(next.names, ['api', 'db', 'empty', 'mixed'], 'the new mesh service is listed');
});
