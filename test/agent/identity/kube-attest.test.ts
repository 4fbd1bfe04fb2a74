/**
 * The agent's side of kubernetes mode against the fake control plane: token
 * files read afresh each time (empty or missing ones named), the node identity
 * attested and saved at start, a start during a control-plane outage with an
 * identity on disk, and node renewal by attesting again with the file's
 * current token instead of RenewNode.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { createControlPlaneConnection } from '../../../agent/identity/cp-connection.js';
import { identityDir, loadNodeIdentity } from '../../../agent/identity/identity-store.js';
import { attestNode, kubernetesAttestation, readTokenFiles } from '../../../agent/identity/kube-attest.js';
import { createNodeRenewal } from '../../../agent/identity/node-renewal.js';
import { createWriteQueue } from '../../../agent/identity/write-queue.js';
import { createLogger } from '../../../lib/logger.js';
import { FakeClock } from '../../fakes/clock.js';
import { FAKE_NODE_ID, FAKE_TRUST_DOMAIN, FakeControlPlane } from '../../fakes/control-plane-client.js';
import { tempDir } from '../../support/temp-dir.js';
import { until } from './rotation-fixtures.js';

t.test('token files: trimmed, read afresh, missing or empty ones named', async (t) => {
  const dir = await tempDir(t);
  const a = path.join(dir, 'a');
  await writeFile(a, 'tok-1\n');
  t.same(await readTokenFiles([a]), ['tok-1']);
  await writeFile(a, 'tok-2');
  t.same(await readTokenFiles([a]), ['tok-2'], 'the current content, not a cached one');
  await t.rejects(readTokenFiles([path.join(dir, 'missing')]), { code: 'MESH_E_KUBE_TOKEN_INVALID', message: /missing/ });
  await writeFile(path.join(dir, 'empty'), '\n');
  await t.rejects(readTokenFiles([path.join(dir, 'empty')]), { code: 'MESH_E_KUBE_TOKEN_INVALID', message: /empty/ });
});

t.test('start attests and saves the node identity; an outage with an identity on disk starts with it', async (t) => {
  const dir = await tempDir(t);
  const dataDir = path.join(dir, 'data');
  const tokenFile = path.join(dir, 'token');
  const caBundle = path.join(dir, 'ca.pem');
  await writeFile(tokenFile, 'tok-1');
  const fake = new FakeControlPlane(new FakeClock(Date.now()));
  await writeFile(caBundle, fake.rootsPem);
  const lines: string[] = [];
  const log = createLogger({ sink: { write: (line) => lines.push(line) } });
  const input = { dataDir, address: 'cp:1', trustDomain: FAKE_TRUST_DOMAIN, caBundle, tokenFiles: [tokenFile], log };
  const attestation = kubernetesAttestation(input, fake.connect);

  await attestation.enroll();
  t.same(fake.attestedTokens, [['tok-1']]);
  t.match(await loadNodeIdentity(dataDir), { spiffeId: FAKE_NODE_ID, controlPlane: 'cp:1', trustDomain: FAKE_TRUST_DOMAIN });
  t.equal(fake.lastClient()?.options.bundlePem, fake.rootsPem, 'the first attestation trusts controlPlane.caBundle');

  fake.down = true;
  await attestation.enroll();
  t.match(lines.join('\n'), /starting with the node identity on disk/, 'an outage with an identity on disk: start with it');

  const fresh = kubernetesAttestation({ ...input, dataDir: path.join(dir, 'other') }, fake.connect);
  await t.rejects(fresh.enroll(), { code: 'MESH_E_CONTROLPLANE_UNAVAILABLE' }, 'an outage with nothing on disk stops the start');
  fake.down = false;
  fake.refused.add(FAKE_NODE_ID);
  await t.rejects(attestation.enroll(), { code: 'MESH_E_NOT_AUTHORIZED' }, 'a refusal stops the start even with an identity on disk');
  t.notMatch(lines.join('\n'), /tok-1/, 'the token is never logged');
});

t.test('renewal attests again with the token the file holds then, never RenewNode', async (t) => {
  const dir = await tempDir(t);
  const tokenFile = path.join(dir, 'token');
  await writeFile(tokenFile, 'tok-1');
  const clock = new FakeClock(Date.now());
  const fake = new FakeControlPlane(clock);
  const joined = await fake.joinNode(dir);
  const log = createLogger({ sink: { write: () => {} }, clock });
  const connection = createControlPlaneConnection({ address: 'cp:1', trustDomain: FAKE_TRUST_DOMAIN, connect: fake.connect });
  connection.replace({ node: joined, bundlePem: joined.bundlePem });
  const queue = createWriteQueue(log);
  const node = createNodeRenewal({
    dataDir: dir,
    identity: joined,
    connection,
    rotation: { clock, log, random: () => 0.5, backoff: { initialMs: 1_000, maxMs: 60_000 } },
    bundlePem: () => joined.bundlePem,
    persist: queue.persist,
    onRenewed: () => connection.replace({ node: node.identity(), bundlePem: joined.bundlePem }),
    request: (client) => attestNode(client, [tokenFile]),
  });
  t.teardown(async () => {
    node.stop();
    await queue.idle();
  });
  node.start();
  await writeFile(tokenFile, 'tok-2'); // the kubelet refreshed the projected token
  clock.advance((node.state().nextRenewalAt ?? 0) - clock.now());
  await until(() => node.state().source === 'control-plane', 'the renewal');
  t.same(
    fake.calls.map((c) => c.method),
    ['attestKubernetes'],
    'renewed by attestation, not RenewNode',
  );
  t.same(fake.attestedTokens, [['tok-2']], "with the file's current token");
  t.not(node.identity().keyPem, joined.keyPem, 'a new node key');
  t.equal((await loadNodeIdentity(dir)).chainPem, node.identity().chainPem, `saved in ${identityDir(dir)}`);
});
