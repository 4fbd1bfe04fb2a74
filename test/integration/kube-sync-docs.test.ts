/**
 * docs/operations/kubernetes-sync.md works as written: its controlplane.yaml
 * section and ServiceIdentity validate, and a control plane holding only the
 * RBAC of the page (applied as written, to the service account it names)
 * syncs both ways against a real API server and Consul. Its Kubernetes
 * commands are ```console blocks, so the docs-commands test does not run
 * them (its world has no API server): this test stands in for it.
 */
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import t from 'tap';
import { parseAllDocuments } from 'yaml';
import { controlplaneSchema } from '../../controlplane/config/schema.js';
import { validateConfig } from '../../lib/config-file.js';
import { parsePolicyDocument } from '../../lib/policy/parse.js';
import { kubeconfigYaml } from '../../scripts/kube-local.js';
import { repoRoot } from '../../scripts/repo-root.js';
import { startConsulDev } from '../support/consul.js';
import { startTestControlPlane } from '../support/controlplane.js';
import { fencedBlocks } from '../support/doc-blocks.js';
import { startKube } from '../support/kube.js';
import { meshService, podSlice, registerVmWorkload, syncedInstances, vmNode } from '../support/kube-sync.js';
import { tempDir } from '../support/temp-dir.js';
import { waitFor } from '../support/wait.js';

t.setTimeout(300_000);

const page = readFileSync(path.join(repoRoot(), 'docs', 'operations', 'kubernetes-sync.md'), 'utf8');
const yamlDocs = fencedBlocks(page)
  .filter((b) => b.lang === 'yaml')
  .flatMap((b) => parseAllDocuments(b.body).map((d) => d.toJS() as Record<string, unknown>));
const find = (pred: (d: Record<string, unknown>) => boolean) => yamlDocs.filter(pred);

t.test('the configuration and the ServiceIdentity of the page validate', async (t) => {
  const [section] = find((d) => 'kubernetes' in d);
  t.ok(section, 'the page has a controlplane.yaml kubernetes section');
  const config = validateConfig(
    controlplaneSchema,
    { dataDir: '/var/lib/mesh', trustDomain: 'example.org', ...section },
    'kubernetes-sync.md',
  );
  t.equal(config.kubernetes?.sync?.fromConsul?.namespace, 'vm-services');
  t.equal(config.kubernetes?.sync?.resync, 10_000);
  const [identity] = find((d) => d.kind === 'ServiceIdentity');
  t.equal(parsePolicyDocument(identity).ok, true, 'the ServiceIdentity example is a valid policy document');
});

t.test('the RBAC of the page is enough for both directions', async (t) => {
  const kube = await startKube(t);
  const consul = await startConsulDev();
  t.teardown(() => consul.stop());
  const rbac = find((d) => String(d.apiVersion).startsWith('rbac.authorization.k8s.io/'));
  t.same(
    rbac.map((d) => d.kind),
    ['ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding'],
  );
  for (const ns of ['mesh-system', 'vm-services', 'shop']) await kube.core.createNamespace({ body: { metadata: { name: ns } } });
  const objects = k8s.KubernetesObjectApi.makeApiClient(kube.kc);
  for (const doc of rbac) await objects.create(doc as k8s.KubernetesObject);
  await kube.serviceAccount('mesh-system', 'mesh-controlplane');
  const answer = await kube.core.createNamespacedServiceAccountToken({
    name: 'mesh-controlplane',
    namespace: 'mesh-system',
    body: { spec: { audiences: [], expirationSeconds: 3600 } },
  });
  const kubeconfig = path.join(await tempDir(t, 'mesh-kubeconfig-'), 'kubeconfig');
  await writeFile(kubeconfig, kubeconfigYaml(kube.url, kube.caPem, answer.status?.token ?? ''), { mode: 0o600 });

  const cp = await startTestControlPlane({
    kubernetes: {
      kubeconfig,
      cluster: 'east',
      sync: { consul: { address: consul.httpAddr }, toConsul: { namespaces: ['shop'] }, fromConsul: { namespace: 'vm-services' } },
    },
  });
  t.teardown(() => cp.stop());
  await kube.serviceAccount('shop', 'orders');
  const pod = await kube.runningPod('shop', 'orders-1', { serviceAccount: 'orders', podIP: '10.244.9.1' });
  await kube.core.createNamespacedService({ namespace: 'shop', body: meshService('shop', 'orders') });
  await kube.discovery.createNamespacedEndpointSlice({ namespace: 'shop', body: podSlice('shop', 'orders', 'orders-1', [{ pod }]) });
  const [instance] = await waitFor(async () => {
    const list = await syncedInstances(consul.httpAddr, 'orders');
    return list.length === 1 ? list : undefined;
  });
  t.equal(instance?.meta.mesh_spiffe_id, 'spiffe://example.org/ns/shop/sa/orders', 'Kubernetes -> Consul with the read-only ClusterRole');
  t.ok(cp.cp.policies.get('ServiceIdentity', 'k8s-east-shop-orders'), 'the ServiceIdentity named as the page says');

  await registerVmWorkload(vmNode(consul.httpAddr, 'vm-1', '192.0.2.31'), {
    service: 'ledger',
    node: 'vm-1',
    address: '192.0.2.31',
    port: 7070,
    meshPort: 15001,
  });
  await waitFor(async () => {
    const list = await kube.discovery.listNamespacedEndpointSlice({
      namespace: 'vm-services',
      labelSelector: 'kubernetes.io/service-name=ledger',
    });
    return list.items[0]?.endpoints?.length === 1 ? true : undefined;
  });
  t.pass('Consul -> Kubernetes with the Role of the fromConsul namespace');
  t.equal(cp.cp.kubeSync?.status().errors, 0, 'no request was refused');
});
