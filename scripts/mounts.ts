/**
 * Mounts left inside a folder that is about to be removed: a debootstrap
 * target (it mounts /proc, /sys and /dev nodes into it) or a container's root.
 * Unmounting them first keeps a recursive removal from ever reaching the host's
 * /dev or /proc.
 */
import { readFile } from 'node:fs/promises';
import { run, runChecked } from '../lib/exec.js';

/** Mount points at or below dir (debootstrap mounts /proc, /sys and /dev nodes into its target), deepest first. */
export function mountsUnder(mountinfo: string, dir: string): string[] {
  const prefix = `${dir.replace(/\/+$/, '')}/`;
  return mountinfo
    .split('\n')
    .map((line) => (line.split(' ')[4] ?? '').replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(Number.parseInt(oct, 8))))
    .filter((point) => point.startsWith(prefix) || `${point}/` === prefix)
    .sort((a, b) => b.length - a.length);
}

/** Unmounts every mount point at or below dir, deepest first (lazily when a plain umount fails). */
export async function unmountUnder(dir: string): Promise<void> {
  const mountinfo = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  for (const point of mountsUnder(mountinfo, dir)) {
    const plain = await run('umount', [point]);
    if (plain.code !== 0) await runChecked('umount', ['--lazy', point], 'MESH_E_PROVISION_FAILED');
  }
}
