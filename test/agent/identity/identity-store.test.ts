/**
 * The node identity on disk: its key and SVID chain are written as a pair,
 * so a crash between the two writes leaves the previous identity to load.
 */
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import {
  identityDir,
  joinedControlPlane,
  loadNodeIdentity,
  type NodeIdentity,
  saveNodeIdentity,
} from '../../../agent/identity/identity-store.js';
import { keyMatchesChain, writeKeyAndChain } from '../../../lib/secret-files.js';
import { CRASHED, crashingIo } from '../../support/crashing-io.js';
import { createTestCa } from '../../support/test-ca.js';

const NODE = 'spiffe://example.org/mesh/node/vm1';

t.test('a renewal cut between the node key and its chain: the previous identity loads', async (t) => {
  const ca = await createTestCa('example.org');
  const dataDir = t.testdir({});
  const joined = ca.issue(NODE);
  const identity: NodeIdentity = {
    controlPlane: '127.0.0.1:8443',
    trustDomain: 'example.org',
    spiffeId: NODE,
    keyPem: joined.keyPem,
    chainPem: joined.chainPem,
    bundlePem: ca.bundlePem,
  };
  await saveNodeIdentity(dataDir, identity);
  const files = { key: path.join(identityDir(dataDir), 'node.key'), chain: path.join(identityDir(dataDir), 'node.pem') };
  const renewed = ca.issue(NODE);
  // saveNodeIdentity's pair write, stopped after the new key (steps: copy chain, copy key, key, chain, ...).
  await t.rejects(writeKeyAndChain(files, renewed, crashingIo(3)), CRASHED);
  t.equal(await readFile(files.key, 'utf8'), renewed.keyPem, 'the new key is on disk, the old chain beside it');

  const loaded = await loadNodeIdentity(dataDir);
  t.match(loaded, { keyPem: joined.keyPem, chainPem: joined.chainPem, spiffeId: NODE }, 'the joined identity, whole');
  t.ok(keyMatchesChain(loaded));

  await saveNodeIdentity(dataDir, { ...identity, ...renewed });
  t.match(await loadNodeIdentity(dataDir), { keyPem: renewed.keyPem, chainPem: renewed.chainPem }, 'a whole save replaces it');
  t.same((await readdir(identityDir(dataDir))).sort(), ['bundle.pem', 'node.json', 'node.key', 'node.pem'], 'no .prev files left');
});

t.test('joinedControlPlane: the address stored at join, none before a join, an error for a damaged file', async (t) => {
  const ca = await createTestCa('example.org');
  const dataDir = t.testdir({});
  t.equal(await joinedControlPlane(dataDir), undefined, 'not joined: no address');
  const joined = ca.issue(NODE);
  await saveNodeIdentity(dataDir, {
    controlPlane: '10.0.0.5:8443',
    trustDomain: 'example.org',
    spiffeId: NODE,
    keyPem: joined.keyPem,
    chainPem: joined.chainPem,
    bundlePem: ca.bundlePem,
  });
  t.equal(await joinedControlPlane(dataDir), '10.0.0.5:8443');
  await writeFile(path.join(identityDir(dataDir), 'node.json'), '{ not json');
  await t.rejects(joinedControlPlane(dataDir), { code: 'MESH_E_NOT_JOINED', message: /node\.json is damaged/ });
});
