/**
 * The mesh listener check against the real Consul, in both modes: a workload
 * registered with its mesh check critical is not returned by
 * /v1/health/service/<name>?passing and the catalog watch does not list it;
 * flipping the check to passing makes it appear (in agent mode without
 * registering the service again); the reason is the check's Output. Also: the
 * TTL check goes critical by itself when nobody refreshes it (an agent that died
 * without deregistering), and an abort cancels a blocking query on the real Consul.
 */
import t, { type Test } from 'tap';
import { createCatalogWatcher } from '../../agent/discovery/catalog-watch.js';
import type { ConsulClient, MeshCheck, RegisterOptions, ServiceRegistration } from '../../agent/discovery/consul-client.js';
import { createConsulHttpClient } from '../../agent/discovery/consul-http.js';
import { createRegistrar } from '../../agent/discovery/registrar.js';
import { systemClock } from '../../lib/clock.js';
import { createLogger } from '../../lib/logger.js';
import { type ConsulDev, startConsulDev } from '../support/consul.js';
import { waitFor } from '../support/wait.js';

t.setTimeout(180_000);

interface CheckJson {
  CheckID: string;
  Name: string;
  Status: string;
  Output: string;
  Notes: string;
  Type: string;
}

const NO_SVID: MeshCheck = { status: 'critical', output: 'no SVID for spiffe://example.org/ns/default/sa/web yet' };
const SERVING: MeshCheck = { status: 'passing', output: 'Envoy serves the mesh listener on 18080' };

/** The real client, counting its register calls. */
function counting(client: ConsulClient): { client: ConsulClient; registers: () => number } {
  let registers = 0;
  const wrapped: ConsulClient = Object.assign(Object.create(client) as ConsulClient, {
    register: (reg: ServiceRegistration, options: RegisterOptions) => {
      registers++;
      return client.register(reg, options);
    },
  });
  return { client: wrapped, registers: () => registers };
}

function registration(dev: ConsulDev, nodeName: string, meshCheck: MeshCheck): ServiceRegistration {
  return {
    id: `web-${nodeName}`,
    name: 'web',
    address: '127.0.0.1',
    port: 8080,
    tags: [],
    meta: { mesh_spiffe_id: 'spiffe://example.org/ns/default/sa/web', mesh_port: '18080' },
    weight: 1,
    meshPort: 18080,
    // The app check passes (Consul's own HTTP port answers), so the mesh check decides.
    check: { name: 'web tcp check', kind: 'tcp', target: dev.httpAddr, interval: '1s', timeout: '1s', status: 'passing', output: 'ok' },
    meshCheck,
  };
}

const clientFor = (dev: ConsulDev, mode: 'agent' | 'catalog', nodeName: string, datacenter = '') =>
  createConsulHttpClient({ mode, address: dev.httpAddr, token: '', datacenter, nodeName, nodeAddress: '127.0.0.1' });

async function scenario(t: Test, mode: 'agent' | 'catalog') {
  const dev = await startConsulDev();
  t.teardown(() => dev.stop());
  const nodeName = mode === 'agent' ? dev.nodeName : 'vm-catalog-1';
  const real = clientFor(dev, mode, nodeName, 'dc1');
  const { client, registers } = counting(real);
  const log = createLogger({ level: 'warn' });
  const registrar = createRegistrar({ client, clock: systemClock, log, backoff: { initialMs: 100, maxMs: 1000 }, syncIntervalMs: 10_000 });
  t.teardown(() => registrar.shutdown());
  const watcher = createCatalogWatcher({
    client: real,
    clock: systemClock,
    log,
    backoff: { initialMs: 100, maxMs: 1000 },
    waitMs: 30_000,
    coalesceMs: 10,
  });
  t.teardown(() => watcher.stop());
  const id = `web-${nodeName}`;
  const meshCheckJson = async () => {
    const checks = await dev.api<CheckJson[]>('/v1/health/checks/web');
    return checks.find((c) => c.CheckID === `mesh:${id}`);
  };

  registrar.setDesired([registration(dev, nodeName, NO_SVID)]);
  await registrar.syncNow();
  // The app check passes and the mesh check holds the reason: the instance is critical. In agent mode the
  // reason is read from the agent: Consul syncs an output-only change to the catalog after
  // check_update_interval (default 5 minutes), a status change at once (see the flips below).
  const checksPath = mode === 'agent' ? '/v1/agent/checks' : '/v1/health/checks/web';
  const critical = await waitFor(
    async () => {
      const checks = Object.values(await dev.api<CheckJson[] | Record<string, CheckJson>>(checksPath));
      const app = checks.find((c) => c.CheckID === `service:${id}`);
      const mesh = checks.find((c) => c.CheckID === `mesh:${id}`);
      return app?.Status === 'passing' && mesh?.Output === NO_SVID.output ? mesh : undefined;
    },
    { timeoutMs: 20_000, what: 'the app check passing and the mesh check carrying its reason' },
  );
  t.match(critical, { Name: 'web mesh listener', Status: 'critical', Output: NO_SVID.output, Notes: /mesh listener/ });
  const inCatalog = await waitFor(
    async () => {
      const check = await meshCheckJson();
      return check?.Notes?.includes(`not serving: ${NO_SVID.output}`) === true ? check : undefined;
    },
    { what: "the catalog to have the reason in the check's Notes" },
  );
  t.equal(inCatalog.Status, 'critical', "the catalog has the reason at once, in the check's Notes");
  if (mode === 'agent') t.equal(critical.Type, 'ttl', 'a TTL check in agent mode');
  t.same(await dev.api<unknown[]>('/v1/health/service/web?passing'), [], 'not returned by ?passing');
  t.same((await dev.api<unknown[]>('/v1/health/service/web')).length, 1, 'registered all the same');
  watcher.setServices(['web']);
  await waitFor(async () => (watcher.watches()[0]?.healthy === true && watcher.view().services.web !== undefined ? true : undefined), {
    what: 'the catalog watch to answer',
  });
  t.same(watcher.view().services.web?.instances, [], 'the catalog watch does not list it');
  t.match(registrar.states(), [{ state: 'registered', health: 'critical' }]);
  const registersBefore = registers();

  registrar.setDesired([registration(dev, nodeName, SERVING)]);
  await waitFor(async () => ((await dev.api<unknown[]>('/v1/health/service/web?passing')).length === 1 ? true : undefined), {
    what: 'web passing',
  });
  await waitFor(async () => (watcher.view().services.web?.instances.length === 1 ? true : undefined), { what: 'the watch to list web' });
  t.equal(watcher.view().services.web?.instances[0]?.id, id);
  t.match(await meshCheckJson(), { Status: 'passing', Output: SERVING.output }, 'the catalog has the new status and its output');
  // Critical -> passing takes the reason out of the check's Notes: one registration, then pushes only.
  if (mode === 'agent') t.equal(registers(), registersBefore + 1, 'agent mode: the reason leaves the Notes with one registration');
  else t.equal(registers(), registersBefore + 1, 'catalog mode: registered again with the new status');
  await registrar.syncNow();
  t.match(registrar.states(), [{ state: 'registered', health: 'passing' }]);

  registrar.setDesired([registration(dev, nodeName, NO_SVID)]);
  await waitFor(async () => (watcher.view().services.web?.instances.length === 0 ? true : undefined), { what: 'the watch to drop web' });
  t.same(await dev.api<unknown[]>('/v1/health/service/web?passing'), [], 'critical again: gone from ?passing');
  t.match(await meshCheckJson(), { Status: 'critical', Output: NO_SVID.output }, 'with the reason in the catalog');
  await registrar.shutdown();
  t.same(await dev.api<unknown[]>('/v1/health/checks/web'), [], 'deregistering the service removes both checks');
}

t.test('agent mode', (t) => scenario(t, 'agent'));
t.test('catalog mode', (t) => scenario(t, 'catalog'));

t.test('agent mode: the mesh TTL check goes critical when nobody refreshes it', async (t) => {
  const dev = await startConsulDev();
  t.teardown(() => dev.stop());
  const client = clientFor(dev, 'agent', dev.nodeName);
  const reg = { ...registration(dev, dev.nodeName, SERVING), check: undefined };
  await client.register(reg, { meshCheckTtlMs: 1000 });
  await client.setMeshCheck?.(reg.id, SERVING);
  const expired = await waitFor(
    async () => {
      const checks = await dev.api<CheckJson[]>('/v1/health/checks/web');
      const mesh = checks.find((c) => c.CheckID === `mesh:${reg.id}`);
      return mesh?.Status === 'critical' ? mesh : undefined;
    },
    { timeoutMs: 20_000, what: 'the TTL to expire' },
  );
  t.match(expired.Output, `TTL expired (last output before timeout follows): ${SERVING.output}`, 'it had been pushed passing');
  t.same(await dev.api<unknown[]>('/v1/health/service/web?passing'), []);
});

t.test('an abort cancels a blocking query on the real Consul; the client keeps working', async (t) => {
  const dev = await startConsulDev();
  t.teardown(() => dev.stop());
  const client = clientFor(dev, 'agent', dev.nodeName);
  const { index } = await client.healthService('web', { index: 0, waitMs: 0 });
  const abort = new AbortController();
  // Blocks for up to 10 minutes unless aborted: the test's timeout is the bound.
  const blocked = client.healthService('web', { index, waitMs: 600_000, signal: abort.signal });
  setImmediate(() => abort.abort());
  await t.rejects(blocked, { name: 'AbortError' });
  const again = await client.healthService('web', { index: 0, waitMs: 0 });
  // A dev server that just started still writes (its own node, serf health): the index may have moved on.
  t.ok(again.index >= index, `the next query answers (index ${again.index}, was ${index})`);
  t.same(again.entries, [], 'with the same (empty) instances');
});
