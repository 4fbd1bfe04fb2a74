/**
 * Writing files atomically (temp file, fsync, rename, fsync of the folder),
 * private keys: created where they are used, mode 0600 in a 0700 folder, and
 * a key with its certificate chain as a pair that a crash never splits.
 */
import { createPrivateKey, generateKeyPairSync, type KeyObject, X509Certificate } from 'node:crypto';
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

/** The two files of a key and its certificate chain (PEM); the previous pair is kept beside them as `<file>.prev`. */
export interface KeyChainFiles {
  key: string;
  chain: string;
}

export interface KeyChainPem {
  keyPem: string;
  chainPem: string;
}

/** The file operations writeKeyAndChain makes, in order; tests replace them to stop it at each step, as a crash would. */
export interface KeyChainIo {
  write(file: string, data: string, mode: number): Promise<void>;
  remove(file: string): Promise<void>;
}

const realIo: KeyChainIo = { write: writeFileAtomic, remove: (file) => rm(file, { force: true }) };
const prev = (file: string) => `${file}.prev`;

/** Whether the key is the private key of the chain's first certificate; false for anything unreadable. */
export function keyMatchesChain(pair: KeyChainPem): boolean {
  try {
    return new X509Certificate(pair.chainPem).checkPrivateKey(createPrivateKey(pair.keyPem));
  } catch {
    return false;
  }
}

async function readPair(files: KeyChainFiles): Promise<KeyChainPem> {
  return { keyPem: await readFile(files.key, 'utf8'), chainPem: await readFile(files.chain, 'utf8') };
}

const readPairOrUndefined = (files: KeyChainFiles) => readPair(files).catch(() => undefined);

/**
 * Replaces a key and its chain. Each file is written atomically, but two files
 * cannot be renamed at once, so the pair on disk, when it matches, is first
 * copied to `<key>.prev` and `<chain>.prev`; then the new key, then the new
 * chain; then the copies go. A crash at any point leaves either a matching
 * current pair or a matching previous one, and readKeyAndChain picks it. A
 * current pair that does not match (a crash between the two writes before)
 * is not copied: the previous pair kept from then is the good one.
 */
export async function writeKeyAndChain(files: KeyChainFiles, pair: KeyChainPem, io: KeyChainIo = realIo): Promise<void> {
  const current = await readPairOrUndefined(files);
  if (current !== undefined && keyMatchesChain(current)) {
    await io.write(prev(files.chain), current.chainPem, 0o644);
    await io.write(prev(files.key), current.keyPem, 0o600);
  }
  await io.write(files.key, pair.keyPem, 0o600);
  await io.write(files.chain, pair.chainPem, 0o644);
  await io.remove(prev(files.key));
  await io.remove(prev(files.chain));
}

/**
 * The key and chain written last as a whole: the current pair when its key
 * matches its chain, else the previous pair when that one matches (`previous`
 * is then true), else the current files as they are, for the caller's own
 * checks to refuse. A current file that cannot be read, with no matching
 * previous pair, throws the file system's error.
 */
export async function readKeyAndChain(files: KeyChainFiles): Promise<KeyChainPem & { previous: boolean }> {
  const current = await readPairOrUndefined(files);
  if (current !== undefined && keyMatchesChain(current)) return { ...current, previous: false };
  const previous = await readPairOrUndefined({ key: prev(files.key), chain: prev(files.chain) });
  if (previous !== undefined && keyMatchesChain(previous)) return { ...previous, previous: true };
  return { ...(current ?? (await readPair(files))), previous: false };
}
