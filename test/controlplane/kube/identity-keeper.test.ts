import t from 'tap';
import { identityDocument, keepIdentities } from '../../../controlplane/kube/identity-keeper.js';
import { MemoryPolicyStore } from '../../fakes/policy-store.js';

const o = { cluster: 'east', actor: 'k8s-sync:east' };
const web = (ids: string[]) => ({ name: 'k8s-east-shop-web', service: 'web', namespace: 'shop', allowedIdentities: ids });
const A = 'spiffe://example.org/ns/shop/sa/a';
const B = 'spiffe://example.org/ns/shop/sa/b';

t.test('applies changed resources as the sync, once; deletes its own that are no longer wanted', async (t) => {
  const store = new MemoryPolicyStore(() => 1);
  t.same(keepIdentities(store, [web([A])], o), { applied: ['k8s-east-shop-web'], deleted: [], conflicts: [] });
  t.equal(store.get('ServiceIdentity', 'k8s-east-shop-web')?.updatedBy, 'k8s-sync:east');
  const revision = store.revision();
  t.same(keepIdentities(store, [web([A])], o).applied, [], 'unchanged: no apply');
  t.equal(store.revision(), revision, 'and no new revision');
  keepIdentities(store, [web([A, B])], o);
  t.same(store.get('ServiceIdentity', 'k8s-east-shop-web')?.source, identityDocument(web([A, B])));
  t.same(keepIdentities(store, [web([])], o), { applied: [], deleted: ['k8s-east-shop-web'], conflicts: [] }, 'no endpoints: no resource');
  t.equal(store.get('ServiceIdentity', 'k8s-east-shop-web'), undefined);
});

t.test('resources written by anyone else are left alone', async (t) => {
  const store = new MemoryPolicyStore(() => 1);
  store.apply([identityDocument(web([B]))], 'operator');
  const other = {
    apiVersion: 'mesh.v1',
    kind: 'ServiceIdentity',
    metadata: { name: 'k8s-east-shop-api' },
    spec: { service: 'api', allowedIdentities: [A] },
  };
  store.apply([other], 'operator');
  t.same(keepIdentities(store, [web([A])], o), { applied: [], deleted: [], conflicts: ['k8s-east-shop-web'] });
  t.same(store.get('ServiceIdentity', 'k8s-east-shop-web')?.source, identityDocument(web([B])), 'not overwritten');
  t.ok(store.get('ServiceIdentity', 'k8s-east-shop-api'), 'not deleted though the sync wants nothing of that name');
  keepIdentities(store, [], { cluster: 'west', actor: 'k8s-sync:west' });
  t.equal(store.list('ServiceIdentity').length, 2, 'another cluster sync deletes nothing of it either');
});

t.test('an operator resource claiming the same service and namespace under another name wins', async (t) => {
  const store = new MemoryPolicyStore(() => 1);
  keepIdentities(store, [web([A])], o);
  store.delete('ServiceIdentity', 'k8s-east-shop-web', 'operator');
  store.apply(
    [
      {
        apiVersion: 'mesh.v1',
        kind: 'ServiceIdentity',
        metadata: { name: 'web-by-hand' },
        spec: { service: 'web', namespace: 'shop', allowedIdentities: [B] },
      },
    ],
    'operator',
  );
  t.same(
    keepIdentities(store, [web([A])], o),
    { applied: [], deleted: [], conflicts: ['k8s-east-shop-web'] },
    'no apply the store would refuse',
  );
  t.same(
    store.list('ServiceIdentity').map((r) => r.name),
    ['web-by-hand'],
  );
});

t.test('two Services of one namespace with one Consul name share one resource', async (t) => {
  const store = new MemoryPolicyStore(() => 1);
  const second = { name: 'k8s-east-shop-web-v2', service: 'web', namespace: 'shop', allowedIdentities: [B] };
  t.same(keepIdentities(store, [web([A]), second], o), { applied: ['k8s-east-shop-web'], deleted: [], conflicts: [] });
  t.same((store.get('ServiceIdentity', 'k8s-east-shop-web')?.source as { spec?: unknown } | undefined)?.spec, {
    service: 'web',
    namespace: 'shop',
    allowedIdentities: [A, B],
  });
});
