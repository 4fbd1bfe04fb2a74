/**
 * The real Envoy accepts what the xDS builders produce. The built listeners and
 * clusters of the golden fixture go into a bootstrap's static_resources
 * unchanged (their RDS, EDS and SDS references point at ADS, configured but
 * never connected), plus probes that embed the built route configurations and
 * ClusterLoadAssignments, and the built secrets as static secrets; Envoy checks
 * it all in `--mode validate` (field values and PGV rules that checkMessage
 * does not know), for the golden fixture and for the traffic fixture (every
 * TrafficRoute and TrafficPolicy field). No ADS server: traffic through these
 * resources is tested in dataplane-mesh and dataplane-traffic.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import t, { type Test } from 'tap';
import { buildBootstrap } from '../../agent/envoy/bootstrap.js';
import type { XdsResource } from '../../agent/xds/resources/common.js';
import { buildSnapshot } from '../../agent/xds/snapshot-build.js';
import { checkMessage, parseEnvoyProtos } from '../../lib/envoy/protos.js';
import { run } from '../../lib/exec.js';
import { fixtureIdentities, fixtureModel } from '../agent/xds/fixtures/model.js';
import { trafficIdentities, trafficModel } from '../agent/xds/fixtures/traffic-model.js';
import { tempDir } from '../support/temp-dir.js';
import { tools } from '../support/tools.js';

t.setTimeout(180_000);

/**
 * The agent's own bootstrap (its ADS cluster on a socket that does not exist, so
 * nothing connects) without its dynamic LDS and CDS, with the resources given
 * as static ones.
 */
function bootstrapWith(listeners: XdsResource[], clusters: XdsResource[], secrets: XdsResource[]): Record<string, unknown> {
  const agent = buildBootstrap({ nodeName: 'xds-validate', adminPort: 0, adsSocket: '/nonexistent/xds.sock', api: 'sotw' }) as {
    dynamic_resources: { ads_config: unknown };
    static_resources: { clusters: unknown[] };
  };
  return {
    ...agent,
    dynamic_resources: { ads_config: agent.dynamic_resources.ads_config },
    static_resources: { listeners, clusters: [...clusters, ...agent.static_resources.clusters], secrets },
  };
}

async function validate(t: Test, bootstrap: Record<string, unknown>): Promise<{ ok: boolean; output: string }> {
  // The whole Envoy API: the agent never loads the Bootstrap type (it writes the bootstrap as JSON).
  checkMessage('envoy.config.bootstrap.v3.Bootstrap', bootstrap, parseEnvoyProtos());
  const { envoy } = await tools();
  const dir = await tempDir(t, 'mesh-xds-validate-');
  const file = path.join(dir, 'bootstrap.json');
  await writeFile(file, JSON.stringify(bootstrap, null, 2));
  const result = await run(envoy.path, ['--mode', 'validate', '-c', file, '--use-dynamic-base-id', '--log-level', 'warning'], {
    timeoutMs: 60_000,
  });
  return { ok: result.code === 0, output: `${result.stdout}\n${result.stderr}` };
}

const FIXTURES = [
  { what: 'the golden fixture', snapshot: () => buildSnapshot(fixtureModel(), fixtureIdentities()) },
  {
    what: 'the traffic fixture (TrafficRoute, TrafficPolicy, two callers)',
    snapshot: () => buildSnapshot(trafficModel().model, trafficIdentities()),
  },
];

for (const fixture of FIXTURES)
  t.test(`Envoy accepts every built resource of ${fixture.what}`, async (t) => {
    const snapshot = fixture.snapshot();
    const routeProbes = [...snapshot.resources.routes.values()].map((route, i) => ({
      name: `probe:route:${i}`,
      address: { socket_address: { address: '127.0.0.1', port_value: 19000 + i } },
      filter_chains: [
        {
          filters: [
            {
              name: 'envoy.filters.network.http_connection_manager',
              typed_config: {
                '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
                stat_prefix: `probe_route_${i}`,
                route_config: route,
                http_filters: [
                  {
                    name: 'envoy.filters.http.fault',
                    typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault' },
                  },
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
    }));
    const endpointProbes = [...snapshot.resources.endpoints.values()].map((cla, i) => ({
      name: `probe:endpoints:${i}`,
      type: 'STATIC',
      connect_timeout: { seconds: '1' },
      load_assignment: { ...cla, cluster_name: `probe:endpoints:${i}` },
    }));
    const result = await validate(
      t,
      bootstrapWith(
        [...snapshot.resources.listeners.values(), ...routeProbes],
        [...snapshot.resources.clusters.values(), ...endpointProbes],
        [...snapshot.resources.secrets.values()],
      ),
    );
    t.ok(result.ok, 'envoy --mode validate accepts the resources', { output: result.output });
    t.match(result.output, /OK/);
  });

t.test('the check fails on a resource Envoy rejects', async (t) => {
  const snapshot = buildSnapshot(fixtureModel(), fixtureIdentities());
  const cluster = { ...(snapshot.resources.clusters.get('outbound:api@web') as XdsResource), connect_timeout: { seconds: '-1' } };
  const result = await validate(t, bootstrapWith([], [cluster], []));
  t.notOk(result.ok, 'a negative connect_timeout is refused');
  t.match(result.output, /duration/i, 'for the duration');
});
