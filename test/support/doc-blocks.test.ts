import t from 'tap';
import { fencedBlocks, replaceBody, shellCommands, shellWords } from './doc-blocks.js';
import { classifyCommand, classifyFile, preambleSteps } from './doc-steps.js';

const doc = [
  '# Title',
  '',
  '```sh',
  'meshctl ca bundle > ca-bundle.pem   # the roots',
  '# a comment line',
  '',
  'mesh-agent join --controlplane cp.example.internal:8443 \\',
  '  --data-dir /var/lib/mesh-agent',
  'mesh-agent status   # prints: "node vm1: healthy"',
  'meshctl ca rotate retire   # exits: 1',
  '```',
  '',
  '```text output',
  'Usage: x',
  '```',
  '',
  '````yaml file=/etc/mesh-agent/agent.yaml',
  'nodeName: vm1',
  '```',
  '````',
  '',
  '  ```console',
  '  $ npm test',
  '  ```',
  '```',
  'never closed',
].join('\n');

t.test('fenced blocks with their language, attributes and lines', async (t) => {
  const blocks = fencedBlocks(doc);
  t.same(
    blocks.map((b) => [b.lang, b.attrs, b.line]),
    [
      ['sh', {}, 3],
      ['text', { output: '' }, 13],
      ['yaml', { file: '/etc/mesh-agent/agent.yaml' }, 17],
      ['console', {}, 22],
      ['', {}, 25],
    ],
  );
  t.equal(blocks[2]?.body, 'nodeName: vm1\n```', 'a longer fence holds a shorter one');
  t.equal(blocks[3]?.body, '$ npm test', 'the indentation of an indented fence is removed');
  t.equal(blocks[4]?.body, 'never closed', 'an unclosed fence runs to the end');
  t.equal(blocks[1]?.bodyStart, 14);
  t.equal(blocks[1]?.bodyEnd, 14);
});

t.test('commands of a sh block', async (t) => {
  const [sh] = fencedBlocks(doc);
  const commands = shellCommands(sh?.body ?? '');
  t.same(
    commands.map((c) => [c.line, c.text, c.prints, c.exits]),
    [
      [1, 'meshctl ca bundle > ca-bundle.pem   # the roots', undefined, 0],
      [4, 'mesh-agent join --controlplane cp.example.internal:8443 --data-dir /var/lib/mesh-agent', undefined, 0],
      [6, 'mesh-agent status', 'node vm1: healthy', 0],
      [7, 'meshctl ca rotate retire', undefined, 1],
    ],
  );
});

t.test('shell words up to the first operator', async (t) => {
  t.same(shellWords(`meshctl token create --allow 'spiffe://td/ns/*' > vm1.token`), [
    'meshctl',
    'token',
    'create',
    '--allow',
    'spiffe://td/ns/*',
  ]);
  t.same(shellWords('a "b c" d# e | f'), ['a', 'b c', 'd#', 'e']);
  t.same(shellWords("x '' y; z"), ['x', '', 'y']);
  t.same(shellWords('a && b'), ['a']);
  t.same(shellWords('a>b'), ['a']);
});

t.test('an output block is rewritten in place', async (t) => {
  const [, text] = fencedBlocks(doc);
  if (text === undefined) throw new Error('no text block');
  const next = replaceBody(doc, text, 'Usage: y\nmore\n');
  t.match(next, '```text output\nUsage: y\nmore\n```\n');
  t.equal(fencedBlocks(next).length, 5);
  t.match(replaceBody(doc, text, ''), '```text output\n```\n', 'an empty output');
});

t.test('what a doc command needs and sets up', async (t) => {
  t.same(classifyCommand('mesh-controlplane run --data-dir /x --trust-domain example.org'), {
    command: 'mesh-controlplane run',
    needs: [],
    provides: ['controlplane'],
    longRunning: true,
  });
  t.same(classifyCommand('meshctl --data-dir /x ca bundle > b.pem').needs, ['controlplane'], 'options before the command words');
  t.same(classifyCommand('meshctl node list').needs, ['controlplane'], 'a meshctl command not in the table');
  t.same(classifyCommand('meshctl bogus').needs, [], 'not a command: nothing (it fails on its own)');
  t.same(classifyCommand('mesh-agent join --controlplane a:1').provides, ['join']);
  t.same(classifyCommand('mesh-agent svid fetch --data-dir d').needs, ['join']);
  t.same(classifyCommand('mesh-agent status').needs, ['agent']);
  t.equal(classifyCommand('mesh-agent run --config c').longRunning, true);
  t.same(classifyCommand('meshctl token create --help'), { needs: [], provides: [], longRunning: false }, '--help needs nothing');
  t.same(classifyCommand('meshctl --version').needs, []);
  t.same(classifyCommand('mesh-agent version --json').needs, []);
  t.same(classifyCommand('ls -l').needs, []);
  t.same(classifyFile('/etc/mesh-agent/agent.yaml'), ['agent-config']);
  t.same(classifyFile('/etc/mesh-agent/workloads.d/web.yaml'), []);
});

t.test('the tour steps a doc runs first', async (t) => {
  t.same(preambleSteps(['agent'], []), ['controlplane', 'join', 'agent-config', 'agent']);
  t.same(preambleSteps(['join'], []), ['controlplane', 'join']);
  t.same(preambleSteps(['agent-config'], []), ['agent-config']);
  t.same(preambleSteps(['controlplane', 'join'], ['join']), ['controlplane'], 'the doc joins itself');
  t.same(preambleSteps(['join'], ['controlplane']), [], 'the doc starts its own control plane: nothing that needs it runs before');
  t.same(preambleSteps(['agent'], ['agent-config']), ['controlplane', 'join'], 'the doc writes its own agent configuration');
  t.same(preambleSteps([], []), []);
});
