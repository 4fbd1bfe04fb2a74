/** The supervisor's files on disk (EnvoyFiles): bootstraps, admin addresses, the binary's identity, the shared memory. */
import { existsSync } from 'node:fs';
import { copyFile, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { envoySharedMemoryPath, nodeEnvoyFiles } from '../../../agent/envoy/envoy-files.js';
import { tempDir } from '../../support/temp-dir.js';

t.test('bootstrap per epoch, and a stale admin address of that epoch removed', async (t) => {
  const dir = path.join(await tempDir(t), 'envoy');
  const files = nodeEnvoyFiles(dir, 1);
  await files.prepare();
  await writeFile(path.join(dir, 'admin-address-2'), '127.0.0.1:1\n');
  t.equal(await files.readAdminAddress(2), '127.0.0.1:1', 'trimmed');
  const file = await files.writeBootstrap(2, { node: { id: 'n' } });
  t.equal(file, path.join(dir, 'bootstrap-2.json'));
  t.same(JSON.parse(await readFile(file, 'utf8')), { node: { id: 'n' } });
  t.equal(await files.readAdminAddress(2), undefined, 'the old address is gone until the new epoch writes it');
  await writeFile(path.join(dir, 'admin-address-2'), '');
  t.equal(await files.readAdminAddress(2), undefined, 'an empty file is no address yet');
});

t.test('the binary identity changes when the file is replaced in place; a missing binary is a clear error', async (t) => {
  const dir = await tempDir(t);
  const files = nodeEnvoyFiles(dir, 1);
  const binary = path.join(dir, 'envoy');
  await writeFile(binary, 'one');
  const first = await files.binaryIdentity(binary);
  t.equal(await files.binaryIdentity(binary), first, 'stable while the file stays');
  await copyFile(binary, `${binary}.new`);
  await rename(`${binary}.new`, binary);
  t.not(await files.binaryIdentity(binary), first, 'same content, new inode: a new binary');
  await t.rejects(files.binaryIdentity(path.join(dir, 'missing')), { code: 'MESH_E_CONFIG_INVALID', message: /missing cannot be read/ });
});

t.test("clean-up removes Envoy's shared memory of the base id and the epochs' files (and missing is fine)", async (t) => {
  const baseId = 3_000_000_000 + process.pid;
  const shm = envoySharedMemoryPath(baseId);
  t.equal(shm, `/dev/shm/envoy_shared_memory_${baseId * 10}`);
  await writeFile(shm, '');
  t.teardown(() => rm(shm, { force: true }));
  const dir = await tempDir(t);
  const files = nodeEnvoyFiles(dir, baseId);
  await files.writeBootstrap(0, { node: { id: 'n' } });
  await files.writeBootstrap(1, { node: { id: 'n' } });
  await writeFile(path.join(dir, 'admin-address-1'), '127.0.0.1:1');
  await writeFile(path.join(dir, 'ads.sock.keep'), '');
  await files.cleanUp();
  t.notOk(existsSync(shm), 'the shared memory is gone');
  t.same(await readdir(dir), ['ads.sock.keep'], 'so are the bootstrap and admin-address files; nothing else is touched');
  await files.cleanUp();
});
