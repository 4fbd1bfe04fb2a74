/**
 * SIGHUP reload of agent.yaml (config-reload.ts): a malformed file keeps the
 * running configuration, logs the file and field paths, and status shows it;
 * a good file is applied (Envoy's part) and names what needs a restart. Also
 * the readiness rule (READY=1) and the systemd-notify notifier.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { configCheckCommand } from '../../../agent/commands/config-command.js';
import { loadAgentConfig } from '../../../agent/config/load.js';
import type { AgentConfig } from '../../../agent/config/schema.js';
import { changedPaths, createConfigReloader } from '../../../agent/run/config-reload.js';
import { agentReadiness } from '../../../agent/status/readiness.js';
import { renderStatus } from '../../../agent/status/render.js';
import { buildStatus } from '../../../agent/status/status.js';
import type { Program } from '../../../lib/cli.js';
import { createLogger } from '../../../lib/logger.js';
import { serviceNotifier } from '../../../lib/sd-notify.js';
import { FakeClock } from '../../fakes/clock.js';
import { runProgram } from '../../support/cli.js';
import { tempDir } from '../../support/temp-dir.js';

const hostname = async () => 'node-a';
const load = (f: string) => loadAgentConfig(f, { hostname, joinedTrustDomain: async () => 'example.org' });

function capture() {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger({ format: 'json', sink: { write: (l) => lines.push(JSON.parse(l) as Record<string, unknown>) } });
  return { lines, log };
}

t.test('a malformed file on reload keeps the previous configuration and says why; a good one is applied', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'agent.yaml');
  await writeFile(file, `dataDir: ${dir}\nenvoy: { binary: /opt/envoy-1 }\n`);
  const initial = await load(file);
  const { lines, log } = capture();
  const applied: AgentConfig[] = [];
  const reloader = createConfigReloader({
    file,
    initial,
    load,
    reloadEnvoy: async (next) => {
      applied.push(next);
      return 'hot-restarted';
    },
    clock: new FakeClock(),
    log,
  });
  t.same(reloader.status(), { file, state: 'loaded' });

  await writeFile(file, `dataDir: ${dir}\nconsul: { mode: sidecar }\nenvoy: { binary: /opt/envoy-2 }\n`);
  const bad = await reloader.reload();
  t.equal(bad.state, 'rejected');
  t.equal(bad.error?.code, 'MESH_E_CONFIG_INVALID');
  t.same(
    bad.error?.issues?.map((i) => i.path),
    ['consul.mode'],
  );
  t.equal(applied.length, 0, 'Envoy is not touched: the agent runs on with its previous configuration');
  t.match(lines.at(-1), { level: 'error', code: 'MESH_E_CONFIG_INVALID', file, fields: ['consul.mode'] });
  const doc = buildStatus({
    node: 'node-a',
    consulMode: 'agent',
    consulAddress: '127.0.0.1:8500',
    connection: 'connected',
    workloads: [],
    fileErrors: [],
    registrations: [],
    view: { version: 0, services: {} },
    watches: [],
    config: reloader.status(),
  });
  t.equal(doc.healthy, false, 'a rejected reload needs attention');
  t.match(doc.problems, [
    new RegExp(
      `configuration ${file}: reload rejected \\(MESH_E_CONFIG_INVALID: consul\\.mode: .*\\); running with the previous configuration`,
    ),
  ]);
  t.match(renderStatus(doc), /config\s+.*agent\.yaml: rejected, reloaded /);

  await writeFile(file, `dataDir: ${dir}\nzone: z1\nenvoy: { binary: /opt/envoy-2 }\n`);
  const good = await reloader.reload();
  t.equal(good.state, 'loaded');
  t.equal(good.envoy, 'hot-restarted');
  t.equal(applied[0]?.envoy.binary, '/opt/envoy-2', "Envoy's new binary is applied");
  t.same(good.restartNeeded, ['zone'], 'other changes wait for a restart');
  t.notOk(good.error);
});

t.test('changedPaths names changed fields two levels deep', async (t) => {
  t.same(changedPaths({ a: 1, b: { c: 1, d: [1] } }, { a: 1, b: { c: 2, d: [1] }, e: 1 }), ['b.c', 'e']);
  t.same(changedPaths({ a: { b: { c: 1 } } }, { a: { b: { c: 2 } } }), ['a.b']);
});

t.test('readiness: Envoy serving and its first snapshot (CDS and LDS) acknowledged', async (t) => {
  t.same(agentReadiness({}), { ready: true }, 'no data plane: ready once started');
  t.match(agentReadiness({ envoy: { state: 'starting' } }), { ready: false, waitingFor: 'Envoy (starting)' });
  const xds = (types: Array<{ type: string; ackedVersion?: string; lastNack?: { version: string; detail: string; at: string } }>) => ({
    socket: 's',
    streams: [],
    counters: {} as never,
    types,
  });
  t.match(agentReadiness({ envoy: { state: 'running' }, xds: xds([{ type: 'CDS', ackedVersion: 'v1' }, { type: 'LDS' }]) }), {
    ready: false,
    waitingFor: /first snapshot \(LDS\)/,
  });
  t.match(
    agentReadiness({
      envoy: { state: 'running' },
      xds: xds([{ type: 'CDS' }, { type: 'LDS', lastNack: { version: 'v1', detail: 'bad', at: '' } }]),
    }),
    { ready: false, waitingFor: /rejected: bad/ },
  );
  t.same(
    agentReadiness({
      envoy: { state: 'hot-restarting' },
      xds: xds([
        { type: 'CDS', ackedVersion: 'a' },
        { type: 'LDS', ackedVersion: 'b' },
      ]),
    }),
    { ready: true },
  );
});

t.test('the notifier runs systemd-notify only under systemd, one message at a time, and never throws', async (t) => {
  const { lines, log } = capture();
  const calls: string[][] = [];
  const silent = serviceNotifier({ notifySocket: undefined, log, exec: async (args) => void calls.push([...args]) });
  await silent.ready('x');
  t.same(calls, [], 'no $NOTIFY_SOCKET: nothing is sent');
  let fail = false;
  const notifier = serviceNotifier({
    notifySocket: '/run/systemd/notify',
    log,
    exec: async (args) => {
      calls.push([...args]);
      if (fail) throw new Error('no manager');
    },
  });
  await notifier.status('starting:\n waiting');
  await notifier.ready('serving 2 workload(s)');
  await notifier.reloading('reloading');
  fail = true;
  await notifier.stopping('stopping');
  t.same(calls, [
    ['STATUS=starting: waiting'],
    ['READY=1', 'STATUS=serving 2 workload(s)'],
    ['RELOADING=1', 'STATUS=reloading'],
    ['STOPPING=1', 'STATUS=stopping'],
  ]);
  t.match(lines.at(-1), { level: 'warn', msg: 'cannot notify systemd' });
});

t.test('mesh-agent config check (the unit runs it before SIGHUP): ok, or exit 1 with the file and field path', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'agent.yaml');
  const program: Program = { name: 'mesh-agent', summary: '', version: '0', commands: [configCheckCommand(hostname)] };
  await writeFile(file, `dataDir: ${dir}\ntrustDomain: example.org\n`);
  const ok = await runProgram(program, ['config', 'check', '--config', file]);
  t.equal(ok.code, 0, ok.err);
  t.equal(ok.out, `${file}: ok (node node-a, trust domain example.org)\n`);
  await writeFile(file, `dataDir: ${dir}\ntrustDomain: example.org\nenvoy: { adminPort: 0, colour: red }\n`);
  const bad = await runProgram(program, ['config', 'check', '--config', file]);
  t.equal(bad.code, 1);
  t.match(bad.err, new RegExp(`MESH_E_CONFIG_INVALID: ${file}`));
  t.match(bad.err, /envoy\.adminPort: /);
  t.match(bad.err, /envoy\.colour: unknown field/);
});
