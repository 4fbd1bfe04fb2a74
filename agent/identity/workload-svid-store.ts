/**
 * Workload SVIDs on disk, so that a restart during a control-plane outage can
 * serve the last ones until they expire:
 *
 *   <dataDir>/identity/workloads/            0700
 *     <name>/                                0700 (workloadDirName(SPIFFE ID))
 *       svid.key                             0600 the key, PKCS#8 PEM
 *       svid.pem                             0644 leaf, then intermediates
 *       svid.key.prev, svid.pem.prev         the pair before, only while one is replaced
 *
 * Files are written atomically (temp file, fsync, rename), key and chain as a
 * pair (secret-files.ts writeKeyAndChain): a crash between the two writes
 * leaves the previous pair, which load() serves, never a certificate with a
 * wrong key. The roots are the node's bundle (<dataDir>/identity/bundle.pem).
 */
import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { isMeshError } from '../../lib/errors.js';
import { ensurePrivateDir, readKeyAndChain, writeKeyAndChain } from '../../lib/secret-files.js';
import { identityDir } from './identity-store.js';
import { checkStoredSvid, type StoredSvid, workloadDirName } from './svid-check.js';

export interface RejectedSvid {
  /** The folder under <dataDir>/identity/workloads. */
  readonly dir: string;
  readonly reason: string;
}

export interface WorkloadSvidStore {
  /** Every stored SVID valid at `now` against the bundle; the others are listed with why (one bad folder never hides the rest). */
  load(bundlePem: string, now: number): Promise<{ svids: StoredSvid[]; rejected: RejectedSvid[] }>;
  /** Writes (or replaces) the SVID and key of a SPIFFE ID. */
  save(spiffeId: string, material: { chainPem: string; keyPem: string }): Promise<void>;
  /** Removes the files of a SPIFFE ID (nothing if there are none). */
  remove(spiffeId: string): Promise<void>;
  /** Removes every stored folder but those of `keep`; returns the folders removed. */
  prune(keep: readonly string[]): Promise<string[]>;
}

export const KEY_FILE = 'svid.key';
export const CHAIN_FILE = 'svid.pem';

export function workloadsDir(dataDir: string): string {
  return path.join(identityDir(dataDir), 'workloads');
}

const missing = (err: unknown) => (err as NodeJS.ErrnoException).code === 'ENOENT';

export function createWorkloadSvidStore(dataDir: string): WorkloadSvidStore {
  const root = workloadsDir(dataDir);

  const folders = async (): Promise<string[]> => {
    try {
      const entries = await readdir(root, { withFileTypes: true });
      return entries
        .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
        .map((e) => e.name)
        .sort();
    } catch (err) {
      if (missing(err)) return [];
      throw err;
    }
  };

  const pairFiles = (dir: string) => ({ key: path.join(root, dir, KEY_FILE), chain: path.join(root, dir, CHAIN_FILE) });

  const readOne = async (dir: string, bundlePem: string, now: number) => {
    let chainPem: string;
    let keyPem: string;
    try {
      ({ keyPem, chainPem } = await readKeyAndChain(pairFiles(dir)));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'error';
      return { ok: false as const, reason: `${KEY_FILE} or ${CHAIN_FILE} cannot be read (${code})` };
    }
    return checkStoredSvid({ dirName: dir, chainPem, keyPem, bundlePem, now });
  };

  /** One folder's verdict: whatever goes wrong in it is its own rejection, never the others'. */
  const checkOne = async (dir: string, bundlePem: string, now: number) => {
    try {
      return await readOne(dir, bundlePem, now);
    } catch (err) {
      const code = isMeshError(err) ? err.code : ((err as NodeJS.ErrnoException).code ?? 'error');
      return { ok: false as const, reason: `the stored SVID cannot be checked (${code})` };
    }
  };

  return {
    async load(bundlePem, now) {
      const svids: StoredSvid[] = [];
      const rejected: RejectedSvid[] = [];
      for (const dir of await folders()) {
        const result = await checkOne(dir, bundlePem, now);
        if (result.ok) svids.push(result.svid);
        else rejected.push({ dir, reason: result.reason });
      }
      return { svids, rejected };
    },
    async save(spiffeId, material) {
      const dir = path.join(root, workloadDirName(spiffeId));
      await ensurePrivateDir(root);
      await ensurePrivateDir(dir);
      // As a pair: a crash between the two writes leaves the previous pair to load.
      await writeKeyAndChain(pairFiles(workloadDirName(spiffeId)), material);
    },
    async remove(spiffeId) {
      await rm(path.join(root, workloadDirName(spiffeId)), { recursive: true, force: true });
    },
    async prune(keep) {
      const kept = new Set(keep.map(workloadDirName));
      const removed: string[] = [];
      for (const dir of await folders()) {
        if (kept.has(dir)) continue;
        await rm(path.join(root, dir), { recursive: true, force: true });
        removed.push(dir);
      }
      return removed;
    },
  };
}
