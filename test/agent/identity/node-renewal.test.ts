/**
 * Node SVID renewal on a fake clock against a fake control plane: renewed at
 * its renewal time with a new key, saved to disk before the connection is
 * told, source 'disk' until then; failures retried, at once on retryFailed().
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { createControlPlaneConnection } from '../../../agent/identity/cp-connection.js';
import { identityDir, loadNodeIdentity } from '../../../agent/identity/identity-store.js';
import { createNodeRenewal } from '../../../agent/identity/node-renewal.js';
import { createWriteQueue } from '../../../agent/identity/write-queue.js';
import { createLogger } from '../../../lib/logger.js';
import { FakeClock } from '../../fakes/clock.js';
import { FAKE_NODE_ID, FakeControlPlane } from '../../fakes/control-plane-client.js';
import { flush } from '../../support/flush.js';
import { tempDir } from '../../support/temp-dir.js';
import { MIN, until } from './rotation-fixtures.js';

async function setup(t: Test) {
  const dataDir = await tempDir(t);
  const clock = new FakeClock(Date.now());
  const fake = new FakeControlPlane(clock);
  const joined = await fake.joinNode(dataDir);
  const lines: string[] = [];
  const log = createLogger({ sink: { write: (line) => lines.push(line) }, clock });
  const connection = createControlPlaneConnection({ address: 'cp:1', trustDomain: 'example.org', connect: fake.connect });
  connection.replace({ node: joined, bundlePem: joined.bundlePem });
  const renewedOnDisk: string[] = [];
  const queue = createWriteQueue(log);
  const node = createNodeRenewal({
    dataDir,
    identity: joined,
    connection,
    rotation: { clock, log, random: () => 0.5, backoff: { initialMs: 1_000, maxMs: 60_000 } },
    bundlePem: () => joined.bundlePem,
    persist: queue.persist,
    onRenewed: () => {
      // What is on disk when the connection is told: the key must already be there.
      renewedOnDisk.push(readFileSync(path.join(identityDir(dataDir), 'node.key'), 'utf8'));
      connection.replace({ node: node.identity(), bundlePem: joined.bundlePem });
    },
  });
  t.teardown(async () => {
    node.stop();
    await queue.idle();
  });
  return { dataDir, clock, fake, joined, node, connection, lines, renewedOnDisk };
}

t.test('renewed at half its life with a new key, saved before use; source disk until then', async (t) => {
  const { dataDir, clock, fake, joined, node, lines, renewedOnDisk } = await setup(t);
  const joinedLeaf = new X509Certificate(joined.chainPem);
  t.match(node.state(), { spiffeId: FAKE_NODE_ID, state: 'pending' }, 'pending before start');
  node.start();
  t.match(node.state(), { state: 'ready', source: 'disk', serial: joinedLeaf.serialNumber, failures: 0 });
  const renewAt = node.state().nextRenewalAt ?? 0;
  t.ok(renewAt > clock.now() + 20 * MIN && renewAt < clock.now() + 40 * MIN, 'about half of the hour');

  clock.advance(renewAt - clock.now() - 1);
  await flush();
  t.equal(fake.calls.length, 0, 'not before its renewal time');
  clock.advance(1);
  await until(() => node.state().source === 'control-plane', 'the renewal');
  t.match(fake.calls, [{ method: 'renewNode', spiffeId: FAKE_NODE_ID }]);
  t.match(node.state(), { state: 'ready', source: 'control-plane', failures: 0 });
  t.not(node.state().serial, joinedLeaf.serialNumber);

  const next = node.identity();
  t.not(next.keyPem, joined.keyPem, 'a new node key');
  t.ok(new X509Certificate(next.chainPem).checkPrivateKey(createPrivateKey(next.keyPem)), 'that goes with the new certificate');
  t.same(renewedOnDisk, [next.keyPem], 'the new key was on disk when the connection was told');
  const stored = await loadNodeIdentity(dataDir);
  t.equal(stored.chainPem, next.chainPem);
  t.match(stored, { controlPlane: joined.controlPlane, trustDomain: joined.trustDomain, spiffeId: FAKE_NODE_ID });
  t.equal(fake.lastClient()?.options.node?.keyPem, next.keyPem, 'the connection uses the new key');
  t.notMatch(lines.join('\n'), /PRIVATE KEY|BEGIN CERTIFICATE/, 'no PEM in the logs');
});

t.test('a failed renewal is retried with backoff, and at once on retryFailed()', async (t) => {
  const { clock, fake, node } = await setup(t);
  node.start();
  fake.down = true;
  clock.advance((node.state().nextRenewalAt ?? 0) - clock.now());
  await until(() => node.state().failures === 1, 'the failed renewal');
  t.match(node.state(), { state: 'failing', failures: 1, source: 'disk', lastError: /^MESH_E_CONTROLPLANE_UNAVAILABLE/ });
  const retryAt = node.state().nextRenewalAt ?? 0;
  t.ok(retryAt > clock.now(), 'a retry is scheduled');
  fake.down = false;
  node.retryFailed();
  await until(() => node.state().failures === 0, 'the retry');
  t.equal(fake.calls.length, 2, 'retried at once');
  t.match(node.state(), { state: 'ready', failures: 0, source: 'control-plane' });
  node.retryFailed();
  await flush();
  t.equal(fake.calls.length, 2, 'nothing to retry once renewed');
});

t.test('stopped while a renewal runs: nothing is saved or used', async (t) => {
  const { dataDir, clock, fake, joined, node } = await setup(t);
  node.start();
  fake.hold = true;
  clock.advance((node.state().nextRenewalAt ?? 0) - clock.now());
  await until(() => fake.heldCalls() === 1, 'the renewal call');
  t.equal(fake.heldCalls(), 1);
  node.stop();
  fake.release();
  await flush();
  t.equal(node.identity().keyPem, joined.keyPem, 'the identity in use is unchanged');
  t.equal((await loadNodeIdentity(dataDir)).keyPem, joined.keyPem, 'and so is the one on disk');
  t.equal(clock.pending(), 0, 'no timer left');
});
