import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t, { type Test } from 'tap';
import { agentConfigSchema } from '../../../agent/config/schema.js';
import { createAgent } from '../../../agent/run/agent.js';
import type { CheckResult } from '../../../agent/workloads/health-check.js';
import { validateConfig } from '../../../lib/config-file.js';
import { deepFreeze } from '../../../lib/deep-freeze.js';
import { createLogger } from '../../../lib/logger.js';
import { FakeClock } from '../../fakes/clock.js';
import { FakeConsul } from '../../fakes/consul.js';
import { flush } from '../../support/flush.js';
import { tempDir } from '../../support/temp-dir.js';
import { httpGet } from '../../support/wait.js';

async function setup(t: Test, mode: 'agent' | 'catalog') {
  const base = await tempDir(t, 'agent-run-');
  const workloadsDir = path.join(base, 'workloads.d');
  await mkdir(workloadsDir);
  const parsed = validateConfig(
    agentConfigSchema(),
    {
      nodeName: 'vm1',
      trustDomain: 'example.org',
      dataDir: path.join(base, 'data'),
      workloadsDir,
      consul: { mode },
      status: { listen: '127.0.0.1:0' },
    },
    'test',
  );
  const config = deepFreeze({ ...parsed, nodeName: 'vm1', trustDomain: 'example.org', consul: { ...parsed.consul } });
  const consul = new FakeConsul();
  const clock = new FakeClock();
  const lines: string[] = [];
  const checkStatus = { value: 'passing' as CheckResult['status'] };
  const agent = createAgent({
    config,
    consul,
    clock,
    log: createLogger({ sink: { write: (l) => lines.push(l) }, clock }),
    address: '10.0.0.1',
    checkRunner: async () => ({ status: checkStatus.value, output: 'checked' }),
    watchFiles: false,
  });
  return { base, workloadsDir, consul, clock, lines, agent, checkStatus, config };
}

t.test('agent mode: workloads register, reload adds/changes/removes, stop deregisters', async (t) => {
  const { workloadsDir, consul, clock, lines, agent, base } = await setup(t, 'agent');
  await writeFile(
    path.join(workloadsDir, 'web.yaml'),
    'name: web\nport: 8080\nprotocol: http\ntags: [v1]\nmeta: { version: v1 }\ncheck: { http: "http://127.0.0.1:8080/h" }\nupstreams: [{ service: api, localPort: 9001 }]\n',
  );
  await writeFile(path.join(workloadsDir, 'bad.yaml'), 'name: bad\nport: 99999\n');
  consul.setInstance({ service: 'api', serviceId: 'api-1', meta: { mesh_port: '19090' } });
  await agent.start();
  await flush();
  clock.advance(25);
  const reg = consul.registered.get('web-vm1');
  t.match(reg, {
    name: 'web',
    address: '10.0.0.1',
    port: 8080,
    meshPort: 18080,
    tags: ['v1'],
    meta: {
      version: 'v1',
      mesh_spiffe_id: 'spiffe://example.org/ns/default/sa/web',
      mesh_protocol: 'http',
      mesh_port: '18080',
      mesh_node: 'vm1',
    },
    check: { kind: 'http', target: 'http://127.0.0.1:8080/h', interval: '10s', timeout: '5s' },
  });
  t.equal(reg?.check?.status, undefined, 'agent mode: Consul runs the check');
  t.equal(agent.view().services.api?.instances[0]?.meshPort, 19090);
  t.ok(lines.some((l) => l.includes('workload file invalid') && l.includes('bad.yaml') && l.includes('"field":"port"')));

  const status = await httpGet(`http://${agent.statusAddress}/status`);
  const doc = JSON.parse(status.body);
  t.match(doc, {
    node: 'vm1',
    consul: { mode: 'agent', state: 'connected' },
    workloads: [{ name: 'web', registration: 'registered', meshPort: 18080 }],
    workloadErrors: [{ field: 'port', code: 'MESH_E_WORKLOAD_INVALID' }],
    upstreams: [{ service: 'api', instances: 1, watch: 'ok', source: 'consul' }],
  });

  await writeFile(path.join(workloadsDir, 'api2.yaml'), 'name: api2\nport: 7000\nupstreams: [{ service: db, localPort: 9101 }]\n');
  await writeFile(path.join(workloadsDir, 'web.yaml'), 'name: web\nport: 8081\n');
  await agent.reload();
  await flush();
  clock.advance(25);
  t.same([...consul.registered.keys()].sort(), ['api2-vm1', 'web-vm1']);
  t.equal(consul.registered.get('web-vm1')?.port, 8081);
  t.same(Object.keys(agent.view().services), ['db'], 'api no longer an upstream');
  await rm(path.join(workloadsDir, 'api2.yaml'));
  await agent.reload();
  await flush();
  t.same([...consul.registered.keys()], ['web-vm1']);
  let seen = 0;
  const off = agent.onView(() => seen++);
  off();
  await agent.stop();
  t.equal(consul.registered.size, 0, 'deregistered on stop');
  const saved = JSON.parse(await readFile(path.join(base, 'data', 'catalog-view.json'), 'utf8'));
  t.equal(saved.format, 1);
  t.equal(seen, 0);
});

t.test('catalog mode: the agent runs the checks and reports them', async (t) => {
  const { workloadsDir, consul, clock, agent, checkStatus } = await setup(t, 'catalog');
  await writeFile(path.join(workloadsDir, 'web.yaml'), 'name: web\nport: 8080\ncheck: { tcp: "127.0.0.1:8080", interval: 1s }\n');
  t.throws(() => agent.onView(() => {}), /not started/);
  await agent.start();
  await flush();
  t.equal(consul.registered.get('web-vm1')?.check?.status, 'critical', 'critical until the first run');
  clock.advance(0);
  await flush();
  t.equal(consul.registered.get('web-vm1')?.check?.status, 'passing');
  t.match(agent.status().workloads, [{ name: 'web', check: 'passing' }]);
  checkStatus.value = 'critical';
  clock.advance(1000);
  await flush();
  t.equal(consul.registered.get('web-vm1')?.check?.status, 'critical', 'status change re-registers');
  await agent.stop();
  t.equal(consul.registered.size, 0);
});

t.test('Consul down at start: persisted view is served', async (t) => {
  const first = await setup(t, 'agent');
  await writeFile(path.join(first.workloadsDir, 'web.yaml'), 'name: web\nport: 8080\nupstreams: [{ service: api, localPort: 9001 }]\n');
  first.consul.setInstance({ service: 'api', serviceId: 'api-1', address: '10.9.9.9' });
  await first.agent.start();
  await flush();
  first.clock.advance(25);
  await flush();
  await first.agent.stop();

  const { createAgent: make } = await import('../../../agent/run/agent.js');
  const consul = new FakeConsul();
  consul.down = true;
  const clock = new FakeClock();
  const again = make({
    config: first.config,
    consul,
    clock,
    log: createLogger({ sink: { write: () => {} } }),
    address: '10.0.0.1',
    checkRunner: async () => ({ status: 'passing', output: '' }),
    watchFiles: false,
  });
  await again.start();
  await flush();
  clock.advance(25);
  t.match(again.view().services.api, { source: 'disk', instances: [{ address: '10.9.9.9' }] });
  t.equal(again.status().consul.state, 'unreachable');
  await again.stop();
});
