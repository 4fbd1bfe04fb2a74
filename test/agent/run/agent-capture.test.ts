/**
 * With transparentProxy on, the agent watches every mesh service of the
 * catalog (not only the workloads' upstreams): apps call any of them by
 * address. Shared Consul fake, fake clock, and a stub data plane that only
 * records the views it gets.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t, { type Test } from 'tap';
import { agentConfigSchema } from '../../../agent/config/schema.js';
import type { DataPlane } from '../../../agent/dataplane/data-plane.js';
import type { CatalogView } from '../../../agent/discovery/catalog-view.js';
import { createAgent } from '../../../agent/run/agent.js';
import { validateConfig } from '../../../lib/config-file.js';
import { deepFreeze } from '../../../lib/deep-freeze.js';
import { createLogger } from '../../../lib/logger.js';
import { FakeClock } from '../../fakes/clock.js';
import { FakeConsul } from '../../fakes/consul.js';
import { flush } from '../../support/flush.js';
import { tempDir } from '../../support/temp-dir.js';

const MESH = { mesh_spiffe_id: 'spiffe://example.org/ns/default/sa/x' };

/** The parts of a data plane the agent calls at start, stop and on views. */
function stubDataPlane(views: CatalogView[]): DataPlane {
  const stub: Partial<DataPlane> = {
    start: async () => {},
    stop: async () => {},
    update: (input) => {
      if (input.view !== undefined) views.push(input.view);
    },
    serving: () => new Map(),
    onServingChange: () => () => {},
    extraServices: () => [],
    onExtraServices: () => () => {},
  };
  return stub as DataPlane;
}

async function setup(t: Test, capture: boolean) {
  const base = await tempDir(t, 'agent-capture-');
  const workloadsDir = path.join(base, 'workloads.d');
  await mkdir(workloadsDir);
  await writeFile(path.join(workloadsDir, 'web.yaml'), 'name: web\nport: 8080\n');
  const parsed = validateConfig(
    agentConfigSchema(),
    {
      nodeName: 'vm1',
      trustDomain: 'example.org',
      dataDir: path.join(base, 'data'),
      workloadsDir,
      status: { listen: '127.0.0.1:0' },
      transparentProxy: { enabled: capture },
    },
    'test',
  );
  const config = deepFreeze({ ...parsed, nodeName: 'vm1', trustDomain: 'example.org' });
  const consul = new FakeConsul({ mode: 'agent' });
  consul.setInstance({ service: 'api', serviceId: 'api-1', meta: MESH });
  consul.setInstance({ service: 'legacy', serviceId: 'legacy-1' });
  const clock = new FakeClock();
  const views: CatalogView[] = [];
  const agent = createAgent({
    config,
    consul,
    clock,
    log: createLogger({ sink: { write: () => {} }, clock }),
    address: '10.0.0.1',
    checkRunner: async () => ({ status: 'passing', output: '' }),
    watchFiles: false,
    dataPlane: stubDataPlane(views),
  });
  t.teardown(() => agent.stop());
  return { consul, clock, agent, views };
}

t.test('capture on: every mesh service is watched, and follows the catalog; services outside the mesh are not', async (t) => {
  const { consul, clock, agent, views } = await setup(t, true);
  await agent.start();
  await flush();
  clock.advance(25);
  await flush();
  t.strictSame(Object.keys(agent.view().services), ['api']);
  t.strictSame(Object.keys(views.at(-1)?.services ?? {}), ['api'], 'the data plane got it');
  consul.setInstance({ service: 'db', serviceId: 'db-1', meta: MESH });
  await flush();
  clock.advance(25);
  await flush();
  t.strictSame(Object.keys(agent.view().services), ['api', 'db']);
  consul.removeInstance('api', 'api-1');
  await flush();
  clock.advance(25);
  await flush();
  t.strictSame(Object.keys(agent.view().services), ['db'], 'a service gone from the list is no longer watched');
  t.ok(consul.calls.includes('meshServices'));
});

t.test('capture off: only the upstreams are watched, no service list query', async (t) => {
  const { consul, clock, agent } = await setup(t, false);
  await agent.start();
  await flush();
  clock.advance(25);
  await flush();
  t.strictSame(Object.keys(agent.view().services), []);
  t.notOk(consul.calls.includes('meshServices'));
});
