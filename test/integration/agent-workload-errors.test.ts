/**
 * Invalid workload files against the real Consul: bad YAML, an unknown key, a
 * port out of range, a duplicate name and bad SPIFFE characters each give a
 * named error (logs and status) while the good workloads are registered; a
 * fixed file is picked up from the directory watch without a restart.
 */
import { EventEmitter } from 'node:events';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { runCommand } from '../../agent/run/run-command.js';
import { agentFixture, agentStatus } from '../support/agent-process.js';
import { startConsulDev } from '../support/consul.js';
import { waitFor } from '../support/wait.js';

t.setTimeout(120_000);

interface Status {
  workloads: Array<{ name: string; registration: string }>;
  workloadErrors: Array<{ file: string; field: string; reason: string; code: string }>;
}

t.test('each bad file is named; the others are unaffected', async (t) => {
  const dev = await startConsulDev();
  t.teardown(() => dev.stop());
  const fx = await agentFixture(dev.httpAddr);
  t.teardown(() => fx.remove());
  await fx.writeWorkload('a-web.yaml', 'name: web\nport: 18001\ncheck: { ttl: 1m }\n');
  await fx.writeWorkload('b-api.yaml', 'name: api\nport: 18002\n');
  await fx.writeWorkload('c-bad-yaml.yaml', 'name: [broken\nport: 1\n');
  await fx.writeWorkload('d-unknown-key.yaml', 'name: db\nport: 18003\nhealth: yes\n');
  await fx.writeWorkload('e-port.yaml', 'name: cache\nport: 70000\n');
  await fx.writeWorkload('f-duplicate.yaml', 'name: web\nport: 18004\n');
  await fx.writeWorkload('g-spiffe.yaml', 'name: queue\nport: 18005\nserviceAccount: "queue?x=1"\n');

  const signals = new EventEmitter();
  let logs = '';
  const io = { stdout: { write: (s: string) => (logs += s) }, stderr: { write: (s: string) => (logs += s) } };
  const done = runCommand({ signals: signals as unknown as NodeJS.Process, exit: () => {} }).run({
    values: { config: fx.configFile },
    positionals: [],
    io,
  });

  const status = await waitFor(
    async () => {
      const s = await agentStatus<Status>(fx.statusAddr);
      return s.workloads.length === 2 && s.workloads.every((w) => w.registration === 'registered') ? s : undefined;
    },
    { timeoutMs: 20_000, what: 'the good workloads registered' },
  );
  const services = await dev.api<Record<string, string[]>>('/v1/catalog/services');
  t.same(Object.keys(services).sort(), ['api', 'consul', 'web'], 'the good workloads are in Consul');
  const byFile = Object.fromEntries(status.workloadErrors.map((e) => [path.basename(e.file), e]));
  t.match(byFile['c-bad-yaml.yaml'], { field: '', reason: /line \d+/, code: 'MESH_E_WORKLOAD_INVALID' });
  t.match(byFile['d-unknown-key.yaml'], { field: 'health', reason: 'unknown field' });
  t.match(byFile['e-port.yaml'], { field: 'port', reason: /65535/ });
  t.match(byFile['f-duplicate.yaml'], { field: 'name', reason: /duplicate workload name "web"/ });
  t.match(byFile['g-spiffe.yaml'], { field: 'serviceAccount', reason: /service account "queue\?x=1"/ });
  t.equal(status.workloadErrors.length, 5);
  for (const name of ['c-bad-yaml', 'd-unknown-key', 'e-port', 'f-duplicate', 'g-spiffe']) {
    t.match(logs, new RegExp(`"msg":"workload file invalid".*${name}`), `${name} logged`);
  }

  await fx.writeWorkload('e-port.yaml', 'name: cache\nport: 18006\n');
  await rm(path.join(fx.workloadsDir, 'b-api.yaml'));
  await waitFor(
    async () => {
      const s = await dev.api<Record<string, string[]>>('/v1/catalog/services');
      return 'cache' in s && !('api' in s) ? true : undefined;
    },
    { timeoutMs: 10_000, what: 'the directory change to register cache and deregister api' },
  );
  const after = await agentStatus<Status>(fx.statusAddr);
  t.equal(after.workloadErrors.length, 4, 'the fixed file is no longer an error');

  signals.emit('SIGTERM', 'SIGTERM');
  t.equal(await done, 0);
});
