/**
 * Part of `npm run build`: copies the files the programs load at run time that
 * tsc does not emit (the wire contract's .proto files under lib/) into dist/,
 * so dist/ alone runs (a package carries only dist/), and writes the Envoy
 * protos' descriptor the agent loads (dist/lib/envoy/envoy-protos.json).
 */
import { copyFile, mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { agentSourceNames } from '../lib/envoy/proto-names.js';
import { ENVOY_DESCRIPTOR_FILE, envoyDescriptor, parseEnvoyProtos } from '../lib/envoy/protos.js';
import { repoRoot } from './repo-root.js';

/** The source folders whose assets are copied, and which files are assets. */
export const ASSET_DIRS: readonly string[] = ['lib', 'agent', 'controlplane'];
export function isAsset(name: string): boolean {
  return name.endsWith('.proto');
}

/** Every asset under root/dir, relative to root, sorted. */
export async function findAssets(root: string, dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(path.join(root, dir), { withFileTypes: true })) {
    const rel = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await findAssets(root, rel)));
    else if (entry.isFile() && isAsset(entry.name)) out.push(rel);
  }
  return out.sort();
}

export async function copyAssets(root: string): Promise<string[]> {
  const copied: string[] = [];
  for (const dir of ASSET_DIRS) {
    for (const rel of await findAssets(root, dir)) {
      await mkdir(path.dirname(path.join(root, 'dist', rel)), { recursive: true });
      await copyFile(path.join(root, rel), path.join(root, 'dist', rel));
      copied.push(rel);
    }
  }
  return copied;
}

/** dist/lib/envoy/envoy-protos.json: the Envoy protos as the agent loads them (lib/envoy/protos.ts envoyDescriptor). */
export async function writeEnvoyDescriptor(root: string): Promise<string> {
  const file = path.join(root, 'dist', 'lib', 'envoy', ENVOY_DESCRIPTOR_FILE);
  await writeFile(file, JSON.stringify(envoyDescriptor(parseEnvoyProtos(), agentSourceNames(root))));
  return file;
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) {
  await copyAssets(repoRoot());
  await writeEnvoyDescriptor(repoRoot());
}
