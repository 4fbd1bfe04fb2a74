/**
 * The Envoy harness against the official Envoy binary: a static bootstrap
 * that proxies a listener to a local HTTP server; a request goes through it,
 * and admin /config_dump, /clusters and /stats show it.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { checkMessage, parseEnvoyProtos } from '../../lib/envoy/protos.js';
import { startEnvoy } from '../support/envoy.js';
import { freePort } from '../support/ports.js';
import { httpGet } from '../support/wait.js';

t.setTimeout(120_000);

function staticBootstrap(listenerPort: number, backendPort: number): Record<string, unknown> {
  return {
    node: { id: 'static-test', cluster: 'mesh-test' },
    admin: { address: { socket_address: { address: '127.0.0.1', port_value: 0 } } },
    static_resources: {
      listeners: [
        {
          name: 'ingress',
          address: { socket_address: { address: '127.0.0.1', port_value: listenerPort } },
          filter_chains: [
            {
              filters: [
                {
                  name: 'envoy.filters.network.http_connection_manager',
                  typed_config: {
                    '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
                    stat_prefix: 'ingress',
                    route_config: {
                      name: 'local',
                      virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'backend' } }] }],
                    },
                    http_filters: [
                      {
                        name: 'envoy.filters.http.router',
                        typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' },
                      },
                    ],
                  },
                },
              ],
            },
          ],
        },
      ],
      clusters: [
        {
          name: 'backend',
          type: 'STATIC',
          connect_timeout: { seconds: '2' },
          load_assignment: {
            cluster_name: 'backend',
            endpoints: [
              { lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: backendPort } } } }] },
            ],
          },
        },
      ],
    },
  };
}

t.test('a request goes through Envoy to a local HTTP server', async (t) => {
  const seen: Array<{ url?: string; headers: http.IncomingHttpHeaders }> = [];
  const backend = http.createServer((req, res) => {
    seen.push({ url: req.url, headers: req.headers });
    res.setHeader('content-type', 'text/plain');
    res.end('hello from backend');
  });
  await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise((resolve) => backend.close(resolve)));
  const backendPort = (backend.address() as AddressInfo).port;
  const listenerPort = await freePort();

  const bootstrap = staticBootstrap(listenerPort, backendPort);
  // The whole Envoy API: the agent never loads the Bootstrap type (it writes the bootstrap as JSON).
  checkMessage('envoy.config.bootstrap.v3.Bootstrap', bootstrap, parseEnvoyProtos());
  const envoy = await startEnvoy({ bootstrap });
  t.teardown(() => envoy.stop());

  const response = await httpGet(`http://127.0.0.1:${listenerPort}/hello?x=1`);
  t.equal(response.status, 200);
  t.equal(response.body, 'hello from backend');
  t.equal(response.headers.get('server'), 'envoy', 'the response came through Envoy');
  t.equal(seen.length, 1, 'the backend saw exactly one request');
  t.equal(seen[0]?.url, '/hello?x=1');
  t.ok(seen[0]?.headers['x-request-id'], 'Envoy added x-request-id on the way');

  const dump = await envoy.configDump();
  const listeners = dump.configs.find((c) => c['@type'].endsWith('ListenersConfigDump')) as
    | { static_listeners?: Array<{ listener: { name: string } }> }
    | undefined;
  t.same(
    listeners?.static_listeners?.map((l) => l.listener.name),
    ['ingress'],
    'config_dump shows the static listener',
  );

  const clusters = await envoy.clusters();
  const backendStatus = clusters.cluster_statuses?.find((c) => c.name === 'backend') as
    | { host_statuses?: Array<{ address: { socket_address: { port_value: number } } }> }
    | undefined;
  t.equal(backendStatus?.host_statuses?.[0]?.address.socket_address.port_value, backendPort, '/clusters lists the backend host');

  const stats = await envoy.stats();
  t.equal(stats.get('cluster.backend.upstream_rq_total'), 1, '/stats counted one upstream request');
  t.equal(stats.get('http.ingress.downstream_rq_2xx'), 1);

  const version = await envoy.admin('/server_info');
  t.match(JSON.parse(version), { state: 'LIVE' });
});

t.test('a bootstrap Envoy rejects fails with its output in the error', async (t) => {
  const port = await freePort();
  const bad = staticBootstrap(port, 1);
  (bad.static_resources as { clusters: Array<Record<string, unknown>> }).clusters.push({ name: 'backend', type: 'STATIC' });
  await t.rejects(startEnvoy({ bootstrap: bad, readyTimeoutMs: 10_000 }), {
    code: 'MESH_E_PROCESS_START',
    message: /duplicate|backend/i,
  });
});
