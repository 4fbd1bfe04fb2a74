import t from 'tap';
import {
  adsClusterName,
  clusterEndpoints,
  clustersByService,
  edsClusters,
  edsNames,
  exactNameRegex,
  rejectedStatCount,
  rejectedUpdates,
  statScope,
  updateTimeFilter,
} from '../../bench/lib/envoy-dump.js';
import { parseStats } from '../support/envoy.js';

const lb = (address: string, port: number, health?: string) => ({
  endpoint: { address: { socket_address: { address, port_value: port } } },
  ...(health === undefined ? {} : { health_status: health }),
});

t.test('clusterEndpoints: healthy are those Envoy routes to; Consul sends critical ones as UNHEALTHY', async (t) => {
  const dump = JSON.stringify({
    configs: [
      { endpoint_config: { cluster_name: 'other', endpoints: [{ lb_endpoints: [lb('10.0.0.9', 1)] }] } },
      {
        endpoint_config: {
          cluster_name: 'svc-0000.default.dc1.internal.x.consul',
          endpoints: [
            { lb_endpoints: [lb('10.0.0.1', 21000, 'HEALTHY'), lb('10.0.0.2', 21000, 'UNHEALTHY')] },
            { lb_endpoints: [lb('10.0.0.3', 21000), lb('10.0.0.4', 21000, 'UNKNOWN'), lb('10.0.0.5', 21000, 'DRAINING')] },
          ],
        },
      },
    ],
  });
  t.same(clusterEndpoints(dump, 'svc-0000.default.dc1.internal.x.consul'), {
    all: ['10.0.0.1:21000', '10.0.0.2:21000', '10.0.0.3:21000', '10.0.0.4:21000', '10.0.0.5:21000'],
    healthy: ['10.0.0.1:21000', '10.0.0.3:21000', '10.0.0.4:21000'],
  });
  t.equal(clusterEndpoints(dump, 'missing'), undefined);
  t.same(clusterEndpoints(JSON.stringify({ configs: [{ endpoint_config: { cluster_name: 'empty' } }] }), 'empty'), {
    all: [],
    healthy: [],
  });
  t.equal(clusterEndpoints('{}', 'x'), undefined);
});

t.test('exactNameRegex escapes the dots of Consul cluster names', async (t) => {
  t.equal(exactNameRegex('outbound:svc-0001'), '^outbound:svc-0001$');
  t.equal(exactNameRegex('svc-1.default.dc1.consul'), '^svc-1\\.default\\.dc1\\.consul$');
  t.ok(new RegExp(exactNameRegex('a.b')).test('a.b'));
  t.notOk(new RegExp(exactNameRegex('a.b')).test('axb'));
});

const fullDump = {
  configs: [
    {
      '@type': 'type.googleapis.com/envoy.admin.v3.BootstrapConfigDump',
      bootstrap: { dynamic_resources: { ads_config: { grpc_services: [{ envoy_grpc: { cluster_name: 'local_agent' } }] } } },
    },
    {
      '@type': 'type.googleapis.com/envoy.admin.v3.ClustersConfigDump',
      static_clusters: [{ cluster: { name: 'local_agent' } }],
      dynamic_active_clusters: [
        { cluster: { name: 'svc-0000.default.dc1.internal.x.consul' } },
        { cluster: { name: 'svc-0005.default.dc1.internal.x.consul' } },
        { cluster: { name: 'local_app' } },
        { cluster: { name: 'outbound:svc-0010@bench-caller', eds_cluster_config: { service_name: 'outbound:svc-0010' } } },
        {},
      ],
    },
  ],
};

t.test('adsClusterName and edsNames (service_name, else the cluster name) read the full config dump', async (t) => {
  t.equal(adsClusterName(fullDump), 'local_agent');
  t.equal(adsClusterName({ configs: [] }), undefined);
  t.same(edsNames(fullDump), [
    'svc-0000.default.dc1.internal.x.consul',
    'svc-0005.default.dc1.internal.x.consul',
    'local_app',
    'outbound:svc-0010',
  ]);
  t.same(edsNames({}), []);
});

t.test('edsClusters pairs each cluster with its EDS name; update_time filters select one cluster as Envoy names its stats', async (t) => {
  t.same(edsClusters(fullDump).at(-1), { cluster: 'outbound:svc-0010@bench-caller', eds: 'outbound:svc-0010' });
  t.same(edsClusters(fullDump)[0], { cluster: 'svc-0000.default.dc1.internal.x.consul', eds: 'svc-0000.default.dc1.internal.x.consul' });
  t.equal(statScope('outbound:svc-0010@bench-caller'), 'outbound_svc-0010@bench-caller');
  const stats = [
    'cluster.outbound_svc-0010@bench-caller.update_time: 1796044767846',
    'cluster.outbound_svc-0010@bench-caller.update_success: 3',
    'cluster.outbound_svc-00100@bench-caller.update_time: 1',
    'cluster.svc-0000.default.dc1.internal.x.consul.update_time: 1796044768130',
    'cluster.svc-0000xdefault.dc1.internal.x.consul.update_time: 2',
  ];
  const pick = (cluster: string) => stats.filter((line) => new RegExp(updateTimeFilter(cluster)).test(line.split(':')[0] as string));
  t.same(pick('outbound:svc-0010@bench-caller'), [stats[0]]);
  t.same(pick('svc-0000.default.dc1.internal.x.consul'), [stats[3]], 'dots are literal');
});

t.test('clustersByService wants exactly one cluster per service', async (t) => {
  const names = edsNames(fullDump);
  const byPrefix = (s: string, n: string) => n.startsWith(`${s}.`);
  t.same(
    [...clustersByService(['svc-0000', 'svc-0005'], names, byPrefix)],
    [
      ['svc-0000', 'svc-0000.default.dc1.internal.x.consul'],
      ['svc-0005', 'svc-0005.default.dc1.internal.x.consul'],
    ],
  );
  t.throws(() => clustersByService(['svc-0001'], names, byPrefix), /expected one cluster for svc-0001, found 0/);
  t.throws(() => clustersByService(['svc'], ['svc.a', 'svc.b'], byPrefix), /found 2/);
});

t.test('rejectedUpdates: NACKs from the update_rejected stats', async (t) => {
  const stats = parseStats(
    [
      'cluster_manager.cds.update_rejected: 0',
      'listener_manager.lds.update_rejected: 2',
      'cluster.outbound:svc-0001.update_rejected: 1',
      'cluster.outbound:svc-0001.update_success: 7',
    ].join('\n'),
  );
  t.same(rejectedUpdates(stats), [
    ['listener_manager.lds.update_rejected', 2],
    ['cluster.outbound:svc-0001.update_rejected', 1],
  ]);
  t.equal(rejectedStatCount(stats), 3);
  t.equal(rejectedStatCount(new Map()), 0);
});
