/**
 * `mesh-controlplane run` in-process: config file plus flag overrides, the
 * listen line, a clean stop on SIGTERM/SIGINT from an injected emitter, and
 * the configurations and data dirs it refuses to start with.
 */
import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { open, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { meshctlProgram } from '../../controlplane/cli/program.js';
import { runCommand } from '../../controlplane/commands/run-command.js';
import { type Program, runCli } from '../../lib/cli.js';
import { captureIo } from '../support/cli.js';
import { tempDir } from '../support/temp-dir.js';
import { waitFor } from '../support/wait.js';

t.setTimeout(120_000);

function program(signals: EventEmitter): Program {
  return {
    name: 'mesh-controlplane',
    summary: 'test',
    version: '0.0.0',
    commands: [runCommand({ signals })],
  };
}

interface Running {
  signals: EventEmitter;
  done: Promise<number>;
  listen: { listen: string; adminSocket: string; trustDomain: string; metrics?: string };
  out: () => string;
  err: () => string;
}

/** Starts `run` and waits for its listen line; fails with the output if it exits first. */
async function start(argv: string[]): Promise<Running> {
  const signals = new EventEmitter();
  const c = captureIo();
  let exited: number | undefined;
  const done = runCli(program(signals), ['run', ...argv], c.io).then((code) => {
    exited = code;
    return code;
  });
  const line = await waitFor(
    async () => {
      if (exited !== undefined) throw new Error(`run exited with ${exited}: ${c.err()}`);
      return c.out().includes('\n') ? c.out().split('\n')[0] : undefined;
    },
    { timeoutMs: 30_000, what: 'the listen line' },
  );
  return { signals, done, listen: JSON.parse(line as string), out: c.out, err: c.err };
}

/** Runs `run` expecting it to refuse to start. */
async function refused(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const c = captureIo();
  const code = await runCli(program(new EventEmitter()), ['run', ...argv], c.io);
  return { code, out: c.out(), err: c.err() };
}

t.test('config file with flags over it; the listen line; SIGTERM stops cleanly', async (t) => {
  const dir = await tempDir(t);
  const dataDir = path.join(dir, 'd');
  const file = path.join(dir, 'cp.yaml');
  await writeFile(file, `dataDir: ${dataDir}\nlisten: 127.0.0.1:1\ntrustDomain: file.example\nlog:\n  level: warn\n`);

  const cp = await start(['--config', file, '--listen', '127.0.0.1:0', '--trust-domain', 'example.org']);
  t.equal(cp.out().split('\n').length, 2, 'exactly one line on stdout');
  t.match(cp.listen.listen, /^127\.0\.0\.1:\d+$/);
  t.not(cp.listen.listen, '127.0.0.1:0', 'the real port');
  t.not(cp.listen.listen, '127.0.0.1:1', '--listen overrides the file');
  t.equal(cp.listen.trustDomain, 'example.org', '--trust-domain overrides the file');
  t.equal(cp.listen.adminSocket, path.join(dataDir, 'admin.sock'), 'dataDir from the file');
  t.ok((await stat(cp.listen.adminSocket)).isSocket());
  t.equal(cp.err(), '', 'log level warn from the file: no info lines');

  const c = captureIo();
  t.equal(await runCli(meshctlProgram(), ['status', '--json', '--data-dir', dataDir], c.io), 0, c.err());
  t.match(JSON.parse(c.out()), { trust_domain: 'example.org', listen: cp.listen.listen });

  cp.signals.emit('SIGTERM');
  t.equal(await cp.done, 0);
  t.notOk(existsSync(cp.listen.adminSocket), 'admin.sock removed');
  t.equal(cp.signals.listenerCount('SIGTERM'), 0);
  t.equal(cp.signals.listenerCount('SIGINT'), 0, 'no signal listener left behind');

  // Restart on the same data dir (same trust domain) and stop with SIGINT.
  const again = await start(['--data-dir', dataDir, '--listen', '127.0.0.1:0', '--trust-domain', 'example.org']);
  t.ok(existsSync(again.listen.adminSocket));
  again.signals.emit('SIGINT');
  t.equal(await again.done, 0);
  t.notOk(existsSync(again.listen.adminSocket));
  t.equal(again.signals.listenerCount('SIGTERM') + again.signals.listenerCount('SIGINT'), 0);
});

t.test('bad config files name the file and the field path', async (t) => {
  const dir = await tempDir(t);
  const unknown = path.join(dir, 'unknown.yaml');
  await writeFile(unknown, `dataDir: ${dir}/d\ntrustDomain: example.org\nrateLimit:\n  perSecond: 5\n  brust: 10\n`);
  let r = await refused(['--config', unknown, '--listen', '127.0.0.1:0']);
  t.equal(r.code, 1);
  t.match(r.err, /MESH_E_CONFIG_INVALID/);
  t.ok(r.err.includes(unknown), 'names the file');
  t.match(r.err, /rateLimit\.brust: unknown field/);
  t.equal(r.out, '');

  const badTd = path.join(dir, 'td.json');
  await writeFile(badTd, JSON.stringify({ dataDir: `${dir}/d`, trustDomain: 'Example.ORG' }));
  r = await refused(['--config', badTd, '--listen', '127.0.0.1:0']);
  t.equal(r.code, 1);
  t.ok(r.err.includes(badTd), 'names the file');
  t.match(r.err, /trustDomain: must be a trust domain name/);

  const badFlag = path.join(dir, 'ok.yaml');
  await writeFile(badFlag, `dataDir: ${dir}/d\ntrustDomain: example.org\n`);
  r = await refused(['--config', badFlag, '--listen', 'nowhere']);
  t.equal(r.code, 1);
  t.match(r.err, /listen: must be HOST:PORT/);

  r = await refused(['--config', path.join(dir, 'missing.yaml')]);
  t.equal(r.code, 1);
  t.match(r.err, /missing\.yaml/);
  t.notOk(existsSync(path.join(dir, 'd')), 'nothing was created');
});

t.test('a data dir of another trust domain is refused', async (t) => {
  const dir = await tempDir(t);
  const cp = await start(['--data-dir', dir, '--listen', '127.0.0.1:0', '--trust-domain', 'example.org']);
  cp.signals.emit('SIGTERM');
  t.equal(await cp.done, 0);

  const r = await refused(['--data-dir', dir, '--listen', '127.0.0.1:0', '--trust-domain', 'other.org']);
  t.equal(r.code, 1);
  t.match(r.err, /MESH_E_CONFIG_INVALID: .*belongs to trust domain example\.org, not other\.org/);
  t.equal(r.out, '');
  t.notOk(existsSync(path.join(dir, 'admin.sock')));
});

t.test('a corrupted database is refused with advice to restore a backup', async (t) => {
  const dir = await tempDir(t);
  const cp = await start(['--data-dir', dir, '--listen', '127.0.0.1:0', '--trust-domain', 'example.org']);
  cp.signals.emit('SIGTERM');
  t.equal(await cp.done, 0);

  const db = path.join(dir, 'controlplane.db');
  t.ok((await stat(db)).size > 8192, 'the database has pages past the second');
  const handle = await open(db, 'r+');
  try {
    const garbage = Buffer.alloc(4096);
    for (let i = 0; i < garbage.length; i++) garbage[i] = (i * 151 + 7) & 0xff;
    await handle.write(garbage, 0, garbage.length, 4096);
    await handle.sync();
  } finally {
    await handle.close();
  }

  const r = await refused(['--data-dir', dir, '--listen', '127.0.0.1:0', '--trust-domain', 'example.org']);
  t.equal(r.code, 1);
  t.match(r.err, /MESH_E_STORE_CORRUPT/);
  t.ok(r.err.includes(db), 'names the database file');
  t.match(r.err, /restore .*backup/i);
  t.equal(r.out, '');
  t.notOk(existsSync(path.join(dir, 'admin.sock')));
});

t.test('a data dir too long for the admin socket is refused naming dataDir', async (t) => {
  const dir = await tempDir(t);
  const dataDir = path.join(dir, 'x'.repeat(110));
  const r = await refused(['--data-dir', dataDir, '--listen', '127.0.0.1:0', '--trust-domain', 'example.org']);
  t.equal(r.code, 1);
  t.match(r.err, /MESH_E_CONFIG_INVALID: dataDir .* is too long for the admin socket path/);
  t.equal(r.out, '');
  t.notOk(existsSync(dataDir), 'refused before anything was created');
});

t.test('metrics.listen in the file: the listen line names it, GET /metrics answers, stop closes it', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'cp.yaml');
  await writeFile(
    file,
    `dataDir: ${path.join(dir, 'd')}\nlisten: 127.0.0.1:0\ntrustDomain: example.org\nmetrics:\n  listen: 127.0.0.1:0\nlog:\n  level: warn\n`,
  );
  const cp = await start(['--config', file]);
  t.match(cp.listen.metrics, /^127\.0\.0\.1:\d+$/, 'the metrics address, with its real port');
  const answer = await fetch(`http://${cp.listen.metrics}/metrics`);
  t.equal(answer.status, 200);
  t.match(await answer.text(), /^mesh_controlplane_streams\{stream="policy"\} 0$/m);
  cp.signals.emit('SIGTERM');
  t.equal(await cp.done, 0);
  await t.rejects(fetch(`http://${cp.listen.metrics}/metrics`), Error, 'the listener is closed');
});

t.test('without metrics.listen there is no metrics listener', async (t) => {
  const dir = await tempDir(t);
  const cp = await start(['--data-dir', path.join(dir, 'd'), '--listen', '127.0.0.1:0', '--trust-domain', 'example.org']);
  t.equal(cp.listen.metrics, undefined);
  cp.signals.emit('SIGTERM');
  t.equal(await cp.done, 0);
});
