/**
 * Writing files atomically (temp file, fsync, rename, fsync of the folder), and
 * private keys: created where they are used, mode 0600 in a 0700 folder.
 */
import { createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { MeshError } from './errors.js';

export async function ensurePrivateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
}

export async function writeFileAtomic(file: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${Date.now()}.tmp`);
  const handle = await open(temp, 'w', mode);
  try {
    await handle.writeFile(data);
    await handle.chmod(mode);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await rename(temp, file);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
  const dir = await open(path.dirname(file), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

/** Writes a private key (PKCS#8 PEM) with mode 0600 into a 0700 folder. */
export async function writePrivateKey(file: string, key: KeyObject, options: { overwrite?: boolean } = {}): Promise<void> {
  await ensurePrivateDir(path.dirname(file));
  if (options.overwrite === false && existsSync(file)) {
    throw new MeshError('MESH_E_INTERNAL', `refusing to overwrite the private key ${file}`, { details: { file } });
  }
  await writeFileAtomic(file, key.export({ type: 'pkcs8', format: 'pem' }) as string, 0o600);
}

export async function readPrivateKey(file: string): Promise<KeyObject> {
  try {
    return createPrivateKey(await readFile(file, 'utf8'));
  } catch (err) {
    throw new MeshError('MESH_E_KEY_UNREADABLE', `cannot load the private key ${file}: ${(err as Error).message}`, {
      cause: err,
      details: { file },
    });
  }
}

export interface KeyPair {
  privateKey: KeyObject;
  publicKey: KeyObject;
}

/** A new ECDSA P-256 key pair (the mesh's default key type). */
export function newKeyPair(): KeyPair {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' });
}
