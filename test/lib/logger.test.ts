import t from 'tap';
import { MeshError } from '../../lib/errors.js';
import { createLogger, formatRecord, isLogLevel, REDACTED, silentLogger } from '../../lib/logger.js';
import { FakeClock } from '../fakes/clock.js';

function capture() {
  const lines: string[] = [];
  return { lines, sink: { write: (line: string) => lines.push(line) } };
}

t.test('JSON lines with time, level, bindings and fields', async (t) => {
  const { lines, sink } = capture();
  const clock = new FakeClock(Date.UTC(2026, 0, 2, 3, 4, 5, 6));
  const log = createLogger({ sink, clock, bindings: { service: 'mesh-agent' } });
  log.info('started', { port: 15000 });
  const record = JSON.parse(lines[0] ?? '');
  t.same(record, { time: '2026-01-02T03:04:05.006Z', level: 'info', service: 'mesh-agent', msg: 'started', port: 15000 });
});

t.test('child loggers add bindings without changing the parent', async (t) => {
  const { lines, sink } = capture();
  const log = createLogger({ sink, bindings: { a: 1 } });
  const child = log.child({ component: 'xds' });
  child.warn('nack', { type: 'cds' });
  log.warn('plain');
  t.match(JSON.parse(lines[0] ?? ''), { a: 1, component: 'xds', msg: 'nack', type: 'cds', level: 'warn' });
  t.notOk('component' in JSON.parse(lines[1] ?? ''));
  t.equal(child.level, 'info');
});

t.test('levels filter', async (t) => {
  const { lines, sink } = capture();
  const log = createLogger({ sink, level: 'warn' });
  log.debug('d');
  log.info('i');
  log.warn('w');
  log.error('e');
  t.same(
    lines.map((l) => JSON.parse(l).level),
    ['warn', 'error'],
  );
  const debug = createLogger({ sink, level: 'debug' });
  debug.debug('shown');
  t.equal(JSON.parse(lines[2] ?? '').msg, 'shown');
  t.ok(isLogLevel('debug'));
  t.notOk(isLogLevel('verbose'));
});

t.test('secrets are redacted, errors and buffers serialized', async (t) => {
  const { lines, sink } = capture();
  const log = createLogger({ sink });
  log.error('join failed', {
    token: 'abc123',
    joinToken: 'def',
    privateKey: 'pem',
    nested: { password: 'p', ok: 'visible', list: [{ secret: 's' }] },
    err: new MeshError('MESH_E_USAGE', 'bad flag', { details: { flag: '--x', token: 'leak' } }),
    plain: new Error('boom'),
    bytes: Buffer.from('xyz'),
    big: 10n,
  });
  const line = lines[0] ?? '';
  t.notMatch(line, /abc123|"def"|"pem"|"p"|"s"|leak/);
  const record = JSON.parse(line);
  t.equal(record.token, REDACTED);
  t.equal(record.joinToken, REDACTED);
  t.equal(record.privateKey, REDACTED);
  t.equal(record.nested.password, REDACTED);
  t.equal(record.nested.ok, 'visible');
  t.equal(record.nested.list[0].secret, REDACTED);
  t.same(record.err, { message: 'bad flag', code: 'MESH_E_USAGE', details: { flag: '--x', token: REDACTED } });
  t.same(record.plain, { message: 'boom' });
  t.equal(record.bytes, '<3 bytes>');
  t.equal(record.big, '10');
});

t.test('human format for terminals', async (t) => {
  const { lines, sink } = capture();
  const clock = new FakeClock(Date.UTC(2026, 0, 2, 3, 4, 5, 6));
  createLogger({ sink, clock, format: 'human' }).child({ component: 'envoy' }).info('envoy ready', { pid: 42, path: '/a b', ok: true });
  t.equal(lines[0], '03:04:05.006 INFO  [envoy] envoy ready pid=42 path="/a b" ok=true');
  t.equal(formatRecord('human', { level: 'warn', msg: 'x' }), ' WARN  x');
});

t.test('silent logger writes nothing anywhere', async (t) => {
  silentLogger.error('nothing');
  silentLogger.child({ a: 1 }).info('nothing');
  t.equal(silentLogger.level, 'error');
});
