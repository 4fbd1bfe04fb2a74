import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { agentProgram } from '../../../agent/program.js';
import { hostFacts } from '../../../agent/run/host-facts.js';
import { runCommand } from '../../../agent/run/run-command.js';
import { runCli } from '../../../lib/cli.js';
import { captureIo as io } from '../../support/cli.js';
import { tempDir } from '../../support/temp-dir.js';

t.test('run is a mesh-agent command; --config is required', async (t) => {
  const help = io();
  t.equal(await runCli(agentProgram(), ['--help'], help.io), 0);
  t.match(help.out(), /run\s+run the agent/);
  const missing = io();
  t.equal(await runCli(agentProgram(), ['run'], missing.io), 2);
  t.match(missing.err(), /MESH_E_USAGE: mesh-agent run: --config FILE is required/);
});

t.test('an invalid config fails with exit 78 (EX_CONFIG), the file and field, as text and as a JSON log line', async (t) => {
  const dir = await tempDir(t, 'run-cmd-');
  const file = path.join(dir, 'agent.yaml');
  await writeFile(file, 'consul: { mode: sidecar }\n');
  const bad = io();
  t.equal(await runCli(agentProgram(), ['run', '--config', file], bad.io), 78, 'the unit stops retrying on 78');
  t.match(bad.err(), /MESH_E_CONFIG_INVALID/);
  t.match(bad.err(), /consul\.mode/);
  const json = bad
    .err()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  t.equal(json.length, 1, 'one JSON line for the journal');
  t.match(json[0], { level: 'error', code: 'MESH_E_CONFIG_INVALID', file, fields: ['consul.mode'] });
});

t.test('host facts come from systeminformation (in a child process)', async (t) => {
  const facts = await hostFacts(new AbortController().signal);
  t.type(facts.hostname, 'string');
  t.ok(facts.hostname.length > 0);
  t.match(facts.address, /^\d+\.\d+\.\d+\.\d+$/);
  t.type(facts.os, 'string');
  t.equal(facts.hostname, os.hostname(), 'the host name nodeName defaults to');
});

t.test('run fails with MESH_E_HOST_FACTS when the facts do not come and advertiseAddress is not set', async (t) => {
  const dir = await tempDir(t, 'run-cmd-');
  const file = path.join(dir, 'agent.yaml');
  await writeFile(file, `dataDir: ${dir}\ntrustDomain: example.org\nhostFactsTimeout: 1ms\n`);
  let aborted = false;
  const never = (signal: AbortSignal) =>
    new Promise<never>(() => {
      signal.addEventListener('abort', () => (aborted = true));
    });
  const out = io();
  const code = await runCli(
    { name: 'mesh-agent', summary: '', version: '0', commands: [runCommand({ facts: never })] },
    ['run', '--config', file],
    out.io,
  );
  t.equal(code, 1);
  t.match(
    out.err(),
    /MESH_E_HOST_FACTS: reading the host facts .* did not finish within 1 ms; set advertiseAddress .* and nodeName .*hostFactsTimeout/,
  );
  t.ok(aborted, 'the source was told to stop');
});
