import type { V1EndpointSlice, V1Pod, V1Service } from '@kubernetes/client-node';
import t from 'tap';
import { identityResourceName, isSelected, planToConsul, type ToConsulContext } from '../../../controlplane/kube/to-consul.js';

const ctx: ToConsulContext = { cluster: 'east', trustDomain: 'example.org', namespaces: ['shop'], meshPortName: 'mesh' };

const service = (ns: string, name: string, annotations: Record<string, string> = {}, labels: Record<string, string> = {}): V1Service => ({
  metadata: { name, namespace: ns, annotations, labels },
  spec: { ports: [{ name: 'http', port: 80 }] },
});
const pod = (ns: string, name: string, sa: string, uid = `uid-${name}`): V1Pod => ({
  metadata: { name, namespace: ns, uid },
  spec: { serviceAccountName: sa, containers: [] },
});
type Ep = { ip: string; pod?: string; ns?: string; uid?: string; ready?: boolean };
const slice = (
  ns: string,
  svc: string,
  eps: Ep[],
  ports = [
    { name: 'http', port: 8080, appProtocol: 'http' },
    { name: 'mesh', port: 15001 },
  ],
): V1EndpointSlice => ({
  metadata: { name: `${svc}-x`, namespace: ns, labels: { 'kubernetes.io/service-name': svc } },
  addressType: 'IPv4',
  ports,
  endpoints: eps.map((e) => ({
    addresses: [e.ip],
    ...(e.ready === undefined ? {} : { conditions: { ready: e.ready } }),
    ...(e.pod === undefined
      ? {}
      : { targetRef: { kind: 'Pod', name: e.pod, ...(e.ns ? { namespace: e.ns } : {}), ...(e.uid ? { uid: e.uid } : {}) } }),
  })),
});

t.test('selection: allowed namespaces, annotations, never the sync own objects', async (t) => {
  t.ok(isSelected(service('shop', 'web'), ['shop']));
  t.notOk(isSelected(service('other', 'web'), ['shop']));
  t.ok(isSelected(service('other', 'web', { 'vm-mesh.io/sync': 'true' }), ['shop']));
  t.notOk(isSelected(service('shop', 'web', { 'vm-mesh.io/sync': 'false' }), ['shop']));
  t.ok(isSelected(service('any', 'web'), ['*']));
  t.notOk(
    isSelected(service('shop', 'web', {}, { 'app.kubernetes.io/managed-by': 'vm-mesh-k8s-sync' }), ['*']),
    'mirrored VM services are not synced back',
  );
});

t.test('ready endpoints with a known Pod become registrations carrying the Pod identity', async (t) => {
  const plan = planToConsul(
    {
      services: [service('shop', 'web')],
      slices: [
        slice('shop', 'web', [
          { ip: '10.0.0.1', pod: 'web-1' },
          { ip: '10.0.0.2', pod: 'web-2', ready: false },
          { ip: '10.0.0.3' },
          { ip: '10.0.0.4', pod: 'gone' },
          { ip: '10.0.0.5', pod: 'web-5', uid: 'stale' },
          { ip: '10.0.0.6', pod: 'spy', ns: 'other' },
          { ip: '10.0.0.7', pod: 'web-7' },
        ]),
      ],
      pods: [
        pod('shop', 'web-1', 'web'),
        pod('shop', 'web-2', 'web'),
        pod('shop', 'web-5', 'web'),
        pod('other', 'spy', 'admin'),
        pod('shop', 'web-7', 'canary'),
      ],
    },
    ctx,
  );
  t.same(
    plan.registrations.map((r) => [
      r.id,
      r.name,
      r.address,
      r.port,
      r.meshPort,
      r.meta.mesh_spiffe_id,
      r.meta.mesh_protocol,
      r.meta.mesh_node,
    ]),
    [
      ['k8s-shop-web-web-1-10-0-0-1', 'web', '10.0.0.1', 8080, 15001, 'spiffe://example.org/ns/shop/sa/web', 'http', 'k8s/east/shop/web-1'],
      [
        'k8s-shop-web-web-7-10-0-0-7',
        'web',
        '10.0.0.7',
        8080,
        15001,
        'spiffe://example.org/ns/shop/sa/canary',
        'http',
        'k8s/east/shop/web-7',
      ],
    ],
  );
  t.same(plan.identities, [
    {
      name: 'k8s-east-shop-web',
      service: 'web',
      namespace: 'shop',
      allowedIdentities: ['spiffe://example.org/ns/shop/sa/canary', 'spiffe://example.org/ns/shop/sa/web'],
    },
  ]);
  t.same(
    plan.skipped.map((s) => s.reason.replace(/^EndpointSlice web-x: /, '')),
    [
      'endpoint 10.0.0.3 has no Pod targetRef',
      'Pod gone of endpoint 10.0.0.4 is not known',
      'Pod web-5 of endpoint 10.0.0.5 is not known',
      'endpoint 10.0.0.6 names Pod other/spy of another namespace',
    ],
    'each left-out endpoint says why; a Pod of another namespace never lends its identity',
  );
});

t.test('mesh port: named port or annotation; protocol; Consul name', async (t) => {
  const pods = [pod('shop', 'a-1', 'a')];
  const noMesh = planToConsul(
    {
      services: [service('shop', 'a')],
      slices: [slice('shop', 'a', [{ ip: '10.0.1.1', pod: 'a-1' }], [{ name: 'http', port: 80, appProtocol: 'http' }])],
      pods,
    },
    ctx,
  );
  t.same(noMesh.registrations, []);
  t.match(noMesh.skipped[0]?.reason, /no port named mesh and no annotation vm-mesh.io\/mesh-port/);
  t.same(noMesh.identities[0]?.allowedIdentities, [], 'no registration, no identity (the sync keeps no resource then)');

  const annotated = planToConsul(
    {
      services: [
        service('shop', 'a', { 'vm-mesh.io/mesh-port': '15006', 'vm-mesh.io/protocol': 'grpc', 'vm-mesh.io/service-name': 'a_grpc' }),
      ],
      slices: [slice('shop', 'a', [{ ip: '10.0.1.1', pod: 'a-1' }], [{ name: 'grpc', port: 9000, appProtocol: 'http' }])],
      pods,
    },
    ctx,
  );
  t.same(
    annotated.registrations.map((r) => [r.name, r.port, r.meshPort, r.meta.mesh_protocol]),
    [['a_grpc', 9000, 15006, 'grpc']],
  );
  const bad = planToConsul(
    { services: [service('shop', 'a', { 'vm-mesh.io/mesh-port': 'x', 'vm-mesh.io/service-name': 'a.b' })], slices: [], pods },
    ctx,
  );
  t.match(bad.skipped[0]?.reason, /a\.b is not a Consul service name/);
  const badPort = planToConsul(
    {
      services: [service('shop', 'a', { 'vm-mesh.io/mesh-port': '70000' })],
      slices: [slice('shop', 'a', [{ ip: '10.0.1.1', pod: 'a-1' }])],
      pods,
    },
    ctx,
  );
  t.match(badPort.skipped[0]?.reason, /is not a port number: 70000/);
});

t.test('identity resource names stay policy names', async (t) => {
  t.equal(identityResourceName('east', 'shop', 'web'), 'k8s-east-shop-web');
  const long = identityResourceName('east', 'a'.repeat(40), 'b'.repeat(40));
  t.equal(long.length <= 63, true);
  t.match(long, /^k8s-east-a{40}-b+-[0-9a-f]{8}$/);
  t.equal(long.length, 63);
  t.not(long, identityResourceName('east', 'a'.repeat(40), 'c'.repeat(40)), 'the hash keeps long names apart');
});
