import t from 'tap';
import { ADS_CLUSTER, buildBootstrap } from '../../../agent/envoy/bootstrap.js';
import { agentProgram } from '../../../agent/program.js';
import { runCli } from '../../../lib/cli.js';
import { checkMessage, decodeMessage, encodeMessage, parseEnvoyProtos } from '../../../lib/envoy/protos.js';
import { captureIo } from '../../support/cli.js';

const BOOTSTRAP = 'envoy.config.bootstrap.v3.Bootstrap';
/** The whole Envoy API: the agent writes its bootstrap as JSON and never loads the Bootstrap type (lib/envoy/proto-names.ts). */
const API = parseEnvoyProtos();

t.test('the bootstrap is a valid Envoy v3 Bootstrap', async (t) => {
  for (const api of ['sotw', 'delta'] as const) {
    for (const accessLog of [false, true]) {
      const bootstrap = buildBootstrap({ nodeName: 'vm1', adminPort: 15000, adsSocket: '/run/mesh-agent/ads.sock', api, accessLog });
      checkMessage(BOOTSTRAP, bootstrap, API);
      t.ok(encodeMessage(BOOTSTRAP, bootstrap, API).length > 0, `${api}, access log ${accessLog}: encodes`);
    }
  }
});

t.test('what the bootstrap promises', async (t) => {
  const b = buildBootstrap({ nodeName: 'vm1', adminPort: 15000, adsSocket: '/run/mesh-agent/ads.sock', api: 'delta' });
  // biome-ignore lint/suspicious/noExplicitAny: a decoded proto object, read field by field below
  const decoded = decodeMessage(BOOTSTRAP, encodeMessage(BOOTSTRAP, b, API), API) as Record<string, any>;
  t.same(decoded.node.id, 'vm1');
  t.equal(decoded.admin.address.socket_address.address, '127.0.0.1', 'admin on loopback only');
  t.equal(decoded.dynamic_resources.ads_config.api_type, 'DELTA_GRPC');
  for (const source of ['lds_config', 'cds_config']) {
    t.same(
      decoded.dynamic_resources[source].initial_fetch_timeout,
      { seconds: '0' },
      `${source}: initial_fetch_timeout 0 (wait for the first config)`,
    );
    t.ok('ads' in decoded.dynamic_resources[source], `${source} over ADS`);
  }
  const ads = decoded.static_resources.clusters[0];
  t.equal(ads.name, ADS_CLUSTER);
  t.equal(
    ads.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.pipe.path,
    '/run/mesh-agent/ads.sock',
    'ADS over the Unix socket',
  );
  const sotw = buildBootstrap({ nodeName: 'vm1', adminPort: 15000, adsSocket: '/s', api: 'sotw' }) as {
    dynamic_resources: { ads_config: { api_type: string } };
  };
  t.equal(sotw.dynamic_resources.ads_config.api_type, 'GRPC');
});

t.test('mesh-agent bootstrap --print', async (t) => {
  const dir = t.testdir({ 'agent.yaml': 'nodeName: vm7\ndataDir: /var/lib/mesh-agent\nenvoy: { adminPort: 15001 }\n' });
  const c = captureIo();
  t.equal(await runCli(agentProgram(), ['bootstrap', '--print', '--config', `${dir}/agent.yaml`, '--api', 'delta'], c.io), 0, c.err());
  const printed = JSON.parse(c.out());
  checkMessage(BOOTSTRAP, printed, API);
  t.equal(printed.node.id, 'vm7');
  t.equal(printed.admin.address.socket_address.port_value, 15001);
  t.equal(printed.dynamic_resources.ads_config.api_type, 'DELTA_GRPC');
  t.equal(
    printed.static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.pipe.path,
    '/var/lib/mesh-agent/envoy/ads.sock',
  );
  for (const [argv, flag] of [
    [['bootstrap', '--config', `${dir}/agent.yaml`], /--print/],
    [['bootstrap', '--print'], /--config/],
    [['bootstrap', '--print', '--config', `${dir}/agent.yaml`, '--api', 'xml'], /--api xml/],
  ] as const) {
    const e = captureIo();
    t.equal(await runCli(agentProgram(), [...argv], e.io), 2);
    t.match(e.err(), flag);
  }
});

t.test("the agent's #! line runs node with AGENT_NODE_FLAGS in AGENT_NODE_ENV", async (t) => {
  const { readFile } = await import('node:fs/promises');
  const { AGENT_NODE_FLAGS, agentEnvAssignments } = await import('../../../agent/node-flags.js');
  const { repoRoot } = await import('../../../scripts/repo-root.js');
  const first = (await readFile(`${repoRoot()}/agent/main.ts`, 'utf8')).split('\n')[0];
  t.equal(first, `#!/usr/bin/env -S ${[...agentEnvAssignments(), 'node', ...AGENT_NODE_FLAGS].join(' ')}`);
});
