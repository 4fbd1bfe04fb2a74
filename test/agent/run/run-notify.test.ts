/**
 * `mesh-agent run` under systemd, wired end to end without Envoy (data plane
 * off, Consul unreachable): READY=1 once started, RELOADING=1 then READY=1
 * with "reload rejected" when SIGHUP finds a malformed agent.yaml (the agent
 * keeps running), READY=1 without it once the file is fixed, STOPPING=1 on
 * SIGTERM. The notifier is the shared fake; the signals an EventEmitter.
 */
import { EventEmitter } from 'node:events';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { runCommand } from '../../../agent/run/run-command.js';
import { FakeNotifier } from '../../fakes/notifier.js';
import { tempDir } from '../../support/temp-dir.js';

t.test('READY=1, reload rejected and recovered, STOPPING=1', async (t) => {
  const dir = await tempDir(t, 'run-notify-');
  const file = path.join(dir, 'agent.yaml');
  const good = [
    'nodeName: n1',
    'trustDomain: example.org',
    `dataDir: ${dir}/state`,
    `workloadsDir: ${dir}/workloads`,
    'advertiseAddress: 127.0.0.1',
    'dataPlane: { enabled: false }',
    "consul: { address: '127.0.0.1:1', retryMax: 1s }",
    "status: { listen: '127.0.0.1:0' }",
    '',
  ].join('\n');
  await writeFile(file, good);
  const notifier = new FakeNotifier();
  const signals = new EventEmitter();
  const sink = { write: () => true };
  const done = runCommand({
    signals: signals as unknown as NodeJS.Process,
    exit: () => {},
    notifier: () => notifier,
    facts: async () => ({ hostname: 'n1', os: 'test', address: '127.0.0.1' }),
  }).run({ values: { config: file }, positionals: [], io: { stdout: sink, stderr: sink } });

  t.match(await notifier.next(/^READY=1/), /^READY=1 STATUS=serving 0 workload\(s\)/, 'ready once started (no data plane to wait for)');

  await writeFile(file, `${good}consul: { mode: sidecar }\n`);
  signals.emit('SIGHUP', 'SIGHUP');
  t.match(
    await notifier.next(/reload rejected/),
    new RegExp(`^READY=1 STATUS=serving .*; reload rejected: MESH_E_CONFIG_INVALID in ${file}`),
    'a malformed file: still serving, and the unit status says why',
  );
  const rejectedAt = notifier.messages.findIndex((m) => m.includes('reload rejected'));
  t.match(notifier.messages[rejectedAt - 1], /^RELOADING=1/, 'RELOADING=1 came first');

  await writeFile(file, good);
  const from = notifier.messages.length;
  signals.emit('SIGHUP', 'SIGHUP');
  await notifier.next(/^RELOADING=1/, from);
  t.notMatch(await notifier.next(/^READY=1/, from), /rejected/, 'a fixed file: the rejection is gone');

  signals.emit('SIGTERM', 'SIGTERM');
  t.equal(await done, 0);
  t.match(notifier.messages.at(-1), /^STOPPING=1/);
});
