import t from 'tap';
import type { HealthEntry } from '../../../agent/discovery/consul-client.js';
import { ANNOTATION_HASH, kubeServiceName, planFromConsul } from '../../../controlplane/kube/from-consul.js';

const ctx = { cluster: 'east', namespace: 'vms', syncNode: 'k8s-east' };
const entry = (o: Partial<HealthEntry> & { serviceId: string; node: string; address: string }): HealthEntry => ({
  nodeAddress: o.address,
  datacenter: 'dc1',
  service: 'payments',
  port: 9090,
  tags: [],
  meta: { mesh_spiffe_id: 'spiffe://example.org/ns/default/sa/payments' },
  weight: 1,
  taggedMeshPort: 15001,
  checks: [{ status: 'passing' }],
  ...o,
});

t.test('VM instances become one headless Service and slices grouped by ports, with ownership labels', async (t) => {
  const plan = planFromConsul(
    new Map([
      [
        'payments',
        [
          entry({ serviceId: 'p-2', node: 'vm-2', address: '192.0.2.2', checks: [{ status: 'critical' }] }),
          entry({ serviceId: 'p-1', node: 'vm-1', address: '192.0.2.1' }),
          entry({ serviceId: 'p-3', node: 'vm-3', address: '192.0.2.3', port: 9091 }),
          entry({ serviceId: 'v6', node: 'vm-6', address: '2001:db8::1' }),
        ],
      ],
      [
        'orders',
        [entry({ serviceId: 'k', node: 'k8s-east', address: '10.0.0.1' }), entry({ serviceId: 'o', node: 'pod-1', address: '10.0.0.1' })],
      ],
      ['carts', [entry({ serviceId: 'k2', node: 'k8s-west', address: '10.0.0.2', meta: { 'external-source': 'kubernetes' } })]],
    ]),
    ctx,
  );
  t.same(
    plan.services.map((s) => [s.metadata?.name, s.spec?.clusterIP, s.spec?.selector, s.spec?.ports?.map((p) => [p.name, p.port])]),
    [
      [
        'payments',
        'None',
        undefined,
        [
          ['app', 9090],
          ['mesh', 15001],
        ],
      ],
    ],
    'services with instances synced from Kubernetes (by this cluster or another) are never mirrored back',
  );
  t.same(
    plan.slices.map((s) => [s.metadata?.name, s.endpoints.map((e) => [e.addresses[0], e.conditions?.ready])]),
    [
      [
        'payments-vm-9090-15001',
        [
          ['192.0.2.1', true],
          ['192.0.2.2', false],
        ],
      ],
      ['payments-vm-9091-15001', [['192.0.2.3', true]]],
    ],
  );
  const labels = plan.slices[0]?.metadata?.labels ?? {};
  t.equal(labels['app.kubernetes.io/managed-by'], 'vm-mesh-k8s-sync');
  t.equal(labels['vm-mesh.io/sync-cluster'], 'east');
  t.equal(labels['kubernetes.io/service-name'], 'payments');
  t.equal(labels['endpointslice.kubernetes.io/managed-by'], 'k8s-sync.vm-mesh.io');
  t.match(plan.slices[0]?.metadata?.annotations?.[ANNOTATION_HASH], /^[0-9a-f]{16}$/);
});

t.test('the hash changes with the content only', async (t) => {
  const one = (address: string) =>
    planFromConsul(new Map([['payments', [entry({ serviceId: 'p-1', node: 'vm-1', address })]]]), ctx).slices[0]?.metadata?.annotations?.[
      ANNOTATION_HASH
    ];
  t.equal(one('192.0.2.1'), one('192.0.2.1'));
  t.not(one('192.0.2.1'), one('192.0.2.9'));
});

t.test('names: Consul names that cannot be Kubernetes names are skipped, collisions too', async (t) => {
  t.equal(kubeServiceName('Web_API'), 'web-api');
  t.equal(kubeServiceName('9lives'), undefined);
  const plan = planFromConsul(
    new Map([
      ['web-api', [entry({ serviceId: 'a', node: 'vm-1', address: '192.0.2.1' })]],
      ['web_api', [entry({ serviceId: 'b', node: 'vm-2', address: '192.0.2.2' })]],
      ['9lives', [entry({ serviceId: 'c', node: 'vm-3', address: '192.0.2.3' })]],
    ]),
    ctx,
  );
  t.same(
    plan.services.map((s) => s.metadata?.name),
    ['web-api'],
  );
  t.same(plan.skipped, [
    { service: '9lives', reason: 'its name cannot be a Kubernetes Service name' },
    { service: 'web_api', reason: 'web-api maps to the same Kubernetes name web-api' },
  ]);
});
