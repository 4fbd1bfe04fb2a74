/**
 * Envoy's files when Envoy runs as its own user (envoy-run-as.ts): the agent
 * keeps owning everything, and gives Envoy's group exactly what Envoy needs.
 * - dataDir: mode 0710, group Envoy's: Envoy may pass through it to its own
 *   folder but not list it; the rest of dataDir is 0700 / 0600 (keys in
 *   identity/, the policy and catalog caches), so Envoy reads none of it.
 * - <dataDir>/envoy: mode 0770, group Envoy's: Envoy writes its admin
 *   address files and the access log there and reads its bootstrap files;
 *   the ADS socket in it is 0660 with Envoy's group (adsSocketGid). Each
 *   bootstrap file gets Envoy's group too: under the unit's UMask=0027 it is
 *   written 0640, which Envoy could not read as a member of "other".
 * - an access log left by an earlier run goes to Envoy's user, and a
 *   hot-restart shared-memory file another user left is removed at start
 *   (Envoy could neither reopen nor unlink it in sticky /dev/shm).
 */
import { chmod, chown, rm, stat } from 'node:fs/promises';
import type { EnvoyFiles } from './envoy-files.js';
import { envoySharedMemoryPath } from './envoy-files.js';
import type { RunAs } from './envoy-run-as.js';

export interface OwnedFilesOptions {
  readonly dataDir: string;
  readonly workDir: string;
  readonly runAs: RunAs;
  readonly agentUid: number;
  readonly baseId: number;
  /** Files Envoy appends to (the access logs), chowned to Envoy's user when they exist. */
  readonly envoyWrites: readonly string[];
}

export function envoyOwnedFiles(inner: EnvoyFiles, o: OwnedFilesOptions): EnvoyFiles {
  return {
    ...inner,
    async writeBootstrap(epoch, bootstrap) {
      const file = await inner.writeBootstrap(epoch, bootstrap);
      await chown(file, o.agentUid, o.runAs.gid);
      return file;
    },
    async prepare() {
      await inner.prepare();
      await chown(o.dataDir, o.agentUid, o.runAs.gid);
      await chmod(o.dataDir, 0o710);
      await chown(o.workDir, o.agentUid, o.runAs.gid);
      await chmod(o.workDir, 0o770);
      for (const file of o.envoyWrites) await chown(file, o.runAs.uid, o.runAs.gid).catch(() => undefined);
      const shm = envoySharedMemoryPath(o.baseId);
      const owner = await stat(shm).catch(() => undefined);
      if (owner !== undefined && owner.uid !== o.runAs.uid) await rm(shm, { force: true });
    },
  };
}
