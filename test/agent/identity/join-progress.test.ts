/**
 * `mesh-agent join` shows its progress on stderr, one numbered line per step
 * (key made, CSR sent, SVID received, written), so --json stdout stays one
 * JSON document; a join that fails shows how far it got.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { agentProgram } from '../../../agent/program.js';
import { freePort } from '../../../lib/ports.js';
import { runProgram } from '../../support/cli.js';
import { startTestControlPlane } from '../../support/controlplane.js';
import { tempDir } from '../../support/temp-dir.js';

t.setTimeout(120_000);

/** `mesh-agent join --json` with the bundle written to a file in dir, and the token given as a file or on the command line. */
async function joinJson(dir: string, address: string, bundlePem: string, token: { file: string } | { text: string }, dataDir: string) {
  const bundle = path.join(dir, 'bundle.pem');
  await writeFile(bundle, bundlePem);
  const tokenArgs = 'file' in token ? ['--token-file', token.file] : ['--token', token.text];
  return runProgram(agentProgram(), [
    'join',
    '--controlplane',
    address,
    ...tokenArgs,
    '--ca-bundle',
    bundle,
    '--data-dir',
    dataDir,
    '--json',
  ]);
}

t.test('join --json: progress on stderr in order, stdout one JSON document', async (t) => {
  const tcp = await startTestControlPlane();
  t.teardown(() => tcp.stop());
  const dir = await tempDir(t);
  await writeFile(path.join(dir, 'token'), tcp.token('vm-progress'));
  const dataDir = path.join(dir, 'agent');
  const r = await joinJson(dir, tcp.cp.address, tcp.bundlePem(), { file: path.join(dir, 'token') }, dataDir);
  t.equal(r.code, 0, r.err);
  const doc = JSON.parse(r.out) as { spiffeId: string; notAfter: string };
  t.equal(doc.spiffeId, 'spiffe://example.org/mesh/node/vm-progress');
  const lines = r.err.trimEnd().split('\n');
  t.equal(lines.length, 4, r.err);
  t.match(lines[0], /^join \[1\/4\] node key made here/);
  t.equal(lines[1], `join [2/4] certificate request sent to ${tcp.cp.address}`);
  t.equal(lines[2], `join [3/4] node SVID received: spiffe://example.org/mesh/node/vm-progress, valid until ${doc.notAfter}`);
  t.equal(lines[3], `join [4/4] key, SVID and trust bundle written to ${path.join(dataDir, 'identity')}`);
});

t.test('a join whose control plane is down shows the steps it reached, then the error', async (t) => {
  const tcp = await startTestControlPlane();
  const bundle = tcp.bundlePem();
  await tcp.stop();
  const dir = await tempDir(t);
  const address = `127.0.0.1:${await freePort()}`;
  const r = await joinJson(dir, address, bundle, { text: 'x'.repeat(20) }, path.join(dir, 'agent'));
  t.equal(r.code, 1);
  t.equal(r.out, '', 'nothing on stdout');
  t.match(
    r.err,
    /^join \[1\/4\] node key made here.*\njoin \[2\/4\] certificate request sent to 127\.0\.0\.1:\d+\nmesh-agent: MESH_E_CONTROLPLANE_UNAVAILABLE/s,
  );
  t.notMatch(r.err, /\[3\/4\]/);
});
