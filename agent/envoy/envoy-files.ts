/**
 * The files around the supervised Envoy, behind one small interface so the
 * supervisor's tests need no disk: the work folder, each epoch's bootstrap
 * (bootstrap-<epoch>.json) and the admin address it writes
 * (admin-address-<epoch>), the binary's identity (size, mtime and inode: a
 * file replaced in place is a new binary), and Envoy's hot-restart shared
 * memory, which Envoy leaves behind and which is removed once no epoch of the
 * base id is left.
 */
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { MeshError } from '../../lib/errors.js';
import { adminAddressPath, bootstrapPath } from './envoy-args.js';

export interface EnvoyFiles {
  /** Creates the work folder if needed. */
  prepare(): Promise<void>;
  /** Writes the bootstrap of an epoch and removes a stale admin address of that epoch; returns the bootstrap's path. */
  writeBootstrap(epoch: number, bootstrap: Readonly<Record<string, unknown>>): Promise<string>;
  /** The admin address (host:port) the epoch wrote, or undefined while it has not. */
  readAdminAddress(epoch: number): Promise<string | undefined>;
  /** `size:mtime:inode`; MESH_E_CONFIG_INVALID when the binary cannot be read. */
  binaryIdentity(binary: string): Promise<string>;
  /**
   * Once no epoch of the base id runs: removes Envoy's shared memory and the
   * epochs' bootstrap and admin-address files (a stale admin address would point
   * at a closed port).
   */
  cleanUp(): Promise<void>;
}

/** The shared-memory file Envoy's hot restart uses for a base id (Envoy names it base id x 10). */
export function envoySharedMemoryPath(baseId: number): string {
  return `/dev/shm/envoy_shared_memory_${baseId * 10}`;
}

export function nodeEnvoyFiles(workDir: string, baseId: number): EnvoyFiles {
  return {
    async prepare() {
      await mkdir(workDir, { recursive: true });
    },
    async writeBootstrap(epoch, bootstrap) {
      const file = bootstrapPath(workDir, epoch);
      await writeFile(file, `${JSON.stringify(bootstrap, null, 2)}\n`);
      await rm(adminAddressPath(workDir, epoch), { force: true });
      return file;
    },
    async readAdminAddress(epoch) {
      const text = (await readFile(adminAddressPath(workDir, epoch), 'utf8').catch(() => '')).trim();
      return text === '' ? undefined : text;
    },
    async binaryIdentity(binary) {
      try {
        const info = await stat(binary);
        return `${info.size}:${info.mtimeMs}:${info.ino}`;
      } catch (err) {
        throw new MeshError('MESH_E_CONFIG_INVALID', `the Envoy binary ${binary} cannot be read: ${(err as Error).message}`, {
          details: { binary },
          cause: err,
        });
      }
    },
    async cleanUp() {
      await rm(envoySharedMemoryPath(baseId), { force: true });
      const names = await readdir(workDir).catch(() => [] as string[]);
      const epochFile = /^(bootstrap-\d+\.json|admin-address-\d+)$/;
      await Promise.all(names.filter((n) => epochFile.test(n)).map((n) => rm(path.join(workDir, n), { force: true })));
    },
  };
}
