import t from 'tap';
import { agentProgram } from '../../agent/program.js';
import { meshctlProgram } from '../../controlplane/cli/program.js';
import { controlplaneProgram } from '../../controlplane/program.js';
import { type Command, type Program, runCli, versionCommand } from '../../lib/cli.js';
import { MeshError } from '../../lib/errors.js';
import { captureIo } from '../support/io.js';

const echo: Command = {
  name: 'echo',
  summary: 'prints its argument',
  usage: '--text TEXT\n\nOptions:\n  --text TEXT   what to print\n',
  options: { text: { type: 'string' }, fail: { type: 'boolean' }, crash: { type: 'boolean' } },
  async run({ values, io }) {
    if (values.fail) throw new MeshError('MESH_E_CONFIG_INVALID', 'bad config', { details: { file: 'x.yaml' } });
    if (values.crash) throw new TypeError('oops');
    io.stdout.write(`${String(values.text)}\n`);
    return 0;
  },
};

const program: Program = { name: 'demo', summary: 'A demo program.', version: '1.2.3', commands: [echo, versionCommand('demo', '1.2.3')] };

t.test('help, version and dispatch', async (t) => {
  let c = captureIo();
  t.equal(await runCli(program, ['--help'], c.io), 0);
  t.match(c.out(), /Usage: demo <command>/);
  t.match(c.out(), /echo\s+prints its argument/);

  c = captureIo();
  t.equal(await runCli(program, [], c.io), 2, 'no command is a usage error, with usage printed');
  t.match(c.out(), /Commands:/);

  c = captureIo();
  t.equal(await runCli(program, ['--version'], c.io), 0);
  t.equal(c.out(), 'demo 1.2.3\n');

  c = captureIo();
  t.equal(await runCli(program, ['version', '--json'], c.io), 0);
  t.same(JSON.parse(c.out()), { program: 'demo', version: '1.2.3' });

  c = captureIo();
  t.equal(await runCli(program, ['echo', '--text', 'hi'], c.io), 0);
  t.equal(c.out(), 'hi\n');

  c = captureIo();
  t.equal(await runCli(program, ['echo', '--help'], c.io), 0);
  t.match(c.out(), /Usage: demo echo --text TEXT/);

  c = captureIo();
  t.equal(await runCli(program, ['help', 'echo'], c.io), 0);
  t.match(c.out(), /prints its argument/);
  c = captureIo();
  t.equal(await runCli(program, ['help'], c.io), 0);
  t.match(c.out(), /Commands:/);
});

t.test('errors carry codes and exit codes', async (t) => {
  let c = captureIo();
  t.equal(await runCli(program, ['nope'], c.io), 2);
  t.match(c.err(), /MESH_E_USAGE: unknown command "nope"/);

  c = captureIo();
  t.equal(await runCli(program, ['echo', '--bogus'], c.io), 2);
  t.match(c.err(), /MESH_E_USAGE: demo echo: .*--bogus/);
  t.match(c.err(), /Usage: demo echo/, 'usage follows a usage error');

  c = captureIo();
  t.equal(await runCli(program, ['echo', '--fail'], c.io), 1);
  t.match(c.err(), /demo: MESH_E_CONFIG_INVALID: bad config/);

  c = captureIo();
  t.equal(await runCli(program, ['echo', '--crash'], c.io), 1);
  t.match(c.err(), /MESH_E_INTERNAL: oops/);
});

t.test('the three programs print usage', async (t) => {
  for (const p of [agentProgram(), controlplaneProgram(), meshctlProgram()]) {
    const c = captureIo();
    t.equal(await runCli(p, ['--help'], c.io), 0);
    t.match(c.out(), new RegExp(`^Usage: ${p.name} <command>`));
    t.match(p.version, /^\d+\.\d+\.\d+/);
  }
});
