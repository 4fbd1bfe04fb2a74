import t from 'tap';
import { agentProgram } from '../../agent/program.js';
import { meshctlProgram } from '../../controlplane/cli/program.js';
import { controlplaneProgram } from '../../controlplane/program.js';
import { type Command, type Program, runCli, versionCommand } from '../../lib/cli.js';
import { MeshError } from '../../lib/errors.js';
import { captureIo } from '../support/cli.js';

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

const ca = (name: string): Command => ({
  name,
  summary: `the ${name} command`,
  usage: '[--data-dir DIR]\n',
  options: { 'data-dir': { type: 'string' }, json: { type: 'boolean' } },
  async run({ values, io }) {
    io.stdout.write(`${name} ${String(values['data-dir'])} ${String(values.json ?? false)}\n`);
    return 0;
  },
});
const token: Command = {
  name: 'token create',
  summary: 'create a token',
  usage: '--node NAME\n',
  options: { node: { type: 'string' }, 'data-dir': { type: 'string' } },
  async run({ values, io }) {
    io.stdout.write(`token for ${String(values.node)}\n`);
    return 0;
  },
};
const revoke: Command = {
  name: 'node revoke',
  summary: 'revoke a node',
  usage: 'NAME\n',
  options: { 'data-dir': { type: 'string' } },
  allowPositionals: true,
  async run({ positionals, io }) {
    io.stdout.write(`revoked ${positionals.join(',')}\n`);
    return 0;
  },
};
const ctl: Program = {
  name: 'ctl',
  summary: 'Multi-word commands.',
  version: '0.0.1',
  commands: [ca('ca bundle'), ca('ca rotate'), ca('ca rotate retire'), token, revoke],
};

t.test('options before, between and after the command words', async (t) => {
  for (const argv of [
    ['--data-dir', 'D', 'ca', 'bundle'],
    ['ca', '--data-dir', 'D', 'bundle'],
    ['ca', 'bundle', '--data-dir', 'D'],
    ['--data-dir=D', 'ca', 'bundle'],
    ['ca', '--json', 'bundle', '--data-dir', 'D'],
  ]) {
    const c = captureIo();
    t.equal(await runCli(ctl, argv, c.io), 0, argv.join(' '));
    t.match(c.out(), /^ca bundle D (true|false)\n$/, argv.join(' '));
  }
  let c = captureIo();
  t.equal(await runCli(ctl, ['ca', '--data-dir', 'D', 'rotate', 'retire'], c.io), 0);
  t.equal(c.out(), 'ca rotate retire D false\n', 'the longest command wins');
  c = captureIo();
  t.equal(await runCli(ctl, ['--data-dir', 'D', 'ca', 'rotate'], c.io), 0);
  t.equal(c.out(), 'ca rotate D false\n');
});

t.test('values that look like command words stay values', async (t) => {
  for (const argv of [
    ['token', 'create', '--node', 'ca'],
    ['--node', 'ca', 'token', 'create'],
    ['token', '--node', 'ca', 'create'],
    ['--data-dir', 'token', '--node', 'ca', 'token', 'create'],
  ]) {
    const c = captureIo();
    t.equal(await runCli(ctl, argv, c.io), 0, `${argv.join(' ')}: ${c.err()}`);
    t.equal(c.out(), 'token for ca\n', argv.join(' '));
  }
  const c = captureIo();
  t.equal(await runCli(ctl, ['--data-dir', 'D', 'node', 'revoke', 'vm1'], c.io), 0);
  t.equal(c.out(), 'revoked vm1\n', "positionals after the command words are the command's");
});

t.test('help and version wherever they stand', async (t) => {
  for (const argv of [
    ['--help', 'ca', 'bundle'],
    ['ca', '-h', 'bundle'],
    ['--data-dir', 'D', 'ca', 'bundle', '--help'],
    ['help', 'ca', 'bundle'],
  ]) {
    const c = captureIo();
    t.equal(await runCli(ctl, argv, c.io), 0, argv.join(' '));
    t.match(c.out(), /^Usage: ctl ca bundle \[--data-dir DIR\]/, argv.join(' '));
  }
  let c = captureIo();
  t.equal(await runCli(ctl, ['--data-dir', 'D', '--help'], c.io), 0);
  t.match(c.out(), /^Usage: ctl <command>/, 'no command: the program usage');
  c = captureIo();
  t.equal(await runCli(ctl, ['--version', 'ca', 'bundle'], c.io), 0);
  t.equal(c.out(), 'ctl 0.0.1\n', '--version first prints the version, as before');
  c = captureIo();
  t.equal(await runCli(ctl, ['--data-dir', 'D', '--version'], c.io), 0);
  t.equal(c.out(), 'ctl 0.0.1\n');
});

t.test('usage errors name what is wrong', async (t) => {
  let c = captureIo();
  t.equal(await runCli(ctl, ['--data-dir', 'D', 'ca', 'bundle', '--bogus'], c.io), 2);
  t.match(c.err(), /ctl: MESH_E_USAGE: ctl ca bundle: .*'--bogus'/, 'an unknown option is named');
  t.match(c.err(), /Usage: ctl ca bundle/);

  c = captureIo();
  t.equal(await runCli(ctl, ['--node', 'x', 'ca', 'bundle'], c.io), 2);
  t.match(c.err(), /ctl ca bundle: .*'--node'/, 'an option of another command is unknown here');

  c = captureIo();
  t.equal(await runCli(ctl, ['--data-dir', 'D', 'nope'], c.io), 2);
  t.match(c.err(), /MESH_E_USAGE: unknown command "nope"; run "ctl --help"/);

  c = captureIo();
  t.equal(await runCli(ctl, ['ca', '--data-dir', 'D', 'bogus'], c.io), 2);
  t.match(c.err(), /unknown command "ca bogus"; the commands that start with "ca" are: ca bundle, ca rotate, ca rotate retire/);

  c = captureIo();
  t.equal(await runCli(ctl, ['--data-dir', 'D'], c.io), 2);
  t.match(c.err(), /MESH_E_USAGE: no command given; run "ctl --help"/);

  c = captureIo();
  t.equal(await runCli(ctl, ['--', 'ca', 'bundle'], c.io), 2, 'words after -- are not command words');
  t.match(c.err(), /no command given/);

  c = captureIo();
  t.equal(await runCli(ctl, ['ca', 'bundle', 'extra'], c.io), 2);
  t.match(c.err(), /ctl ca bundle: .*'extra'/, 'a stray positional is named');
});

t.test('every command of the three programs takes its options anywhere', async (t) => {
  for (const p of [agentProgram(), controlplaneProgram(), meshctlProgram()]) {
    for (const command of p.commands) {
      const words = command.name.split(' ');
      for (const at of [0, words.length > 1 ? 1 : words.length, words.length]) {
        const argv = [...words.slice(0, at), '--help', ...words.slice(at)];
        const c = captureIo();
        t.equal(await runCli(p, argv, c.io), 0, `${p.name} ${argv.join(' ')}`);
        t.ok(c.out().startsWith(`Usage: ${p.name} ${command.name} `), `${p.name} ${argv.join(' ')}`);
      }
    }
  }
});
