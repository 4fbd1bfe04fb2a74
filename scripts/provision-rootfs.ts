/**
 * Provisions the root file system of the booted Debian container the package
 * test runs in (test/support/nspawn.ts), into the same cache and under the same
 * lock as Envoy and Consul (provision.ts, provision-lock.ts):
 *
 *   debootstrap --variant=minbase --include=<DEBIAN_ROOTFS_PACKAGES> bookworm ROOT <mirror>
 *
 * packed as `debian-bookworm-<key>.tar.zst` (about 110 MB), where the key is a
 * short hash of every input (suite, variant, package list, mirror, the recipe's
 * revision): a changed input names a file that does not exist yet, so the
 * rootfs is built again (about 70 s with a local mirror); an older file is left
 * alone (another clone may still use it). The mirror is the Debian mirror this
 * machine's apt uses (/etc/apt/sources.list*), or MESH_DEBIAN_MIRROR.
 *
 * Built in a staging folder `<file>.tmp-<pid>` and renamed into place only when
 * the archive is complete; debootstrap runs niced. Needs root, debootstrap,
 * tar and zstd (.ci/run installs them).
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { MeshError } from '../lib/errors.js';
import { run, runChecked } from '../lib/exec.js';
import { unmountUnder } from './mounts.js';
import { type ToolInfo, underProvisionLock } from './provision.js';

export const DEBIAN_SUITE = 'bookworm';
/**
 * systemd as init with D-Bus; iptables for the capture rules; rpm for the .rpm
 * half of the package test; curl as a client; iproute2 and procps to look
 * around. Anything the packages depend on must be here: the test installs
 * them with dpkg -i, without apt.
 */
export const DEBIAN_ROOTFS_PACKAGES = ['systemd', 'systemd-sysv', 'dbus', 'iptables', 'rpm', 'curl', 'iproute2', 'procps'] as const;
/** Bumped when the recipe below changes in a way the other inputs do not show. */
const RECIPE_REVISION = 1;
const FALLBACK_MIRROR = 'http://deb.debian.org/debian';

/**
 * The Debian mirror of apt's sources: the first `URIs:` (deb822) or `deb` line
 * (one-line format) whose suites include `suite` itself (not -security or -updates).
 */
export function debianMirrorOf(sources: readonly string[], suite: string): string | undefined {
  for (const text of sources) {
    for (const stanza of text.split(/\n\s*\n/)) {
      const field = (name: string) => new RegExp(`^${name}:\\s*(.+)$`, 'mi').exec(stanza)?.[1]?.trim().split(/\s+/) ?? [];
      const types = field('Types');
      if (types.includes('deb') && field('Suites').includes(suite) && field('URIs')[0]) return field('URIs')[0];
    }
    for (const line of text.split('\n')) {
      const m = /^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)/.exec(line);
      if (m?.[2] === suite) return m[1];
    }
  }
  return undefined;
}

async function machineMirror(env: NodeJS.ProcessEnv): Promise<string> {
  if (env.MESH_DEBIAN_MIRROR) return env.MESH_DEBIAN_MIRROR;
  const files = ['/etc/apt/sources.list'];
  const dir = '/etc/apt/sources.list.d';
  for (const name of (await readdir(dir).catch(() => [] as string[])).sort()) {
    if (name.endsWith('.list') || name.endsWith('.sources')) files.push(path.join(dir, name));
  }
  const texts = await Promise.all(files.map((f) => readFile(f, 'utf8').catch(() => '')));
  return debianMirrorOf(texts, DEBIAN_SUITE) ?? FALLBACK_MIRROR;
}

export interface RootfsInputs {
  suite: string;
  variant: string;
  packages: readonly string[];
  mirror: string;
}

/** The cache file name for these inputs: `debian-<suite>-<12 hex of their hash>.tar.zst`. */
export function rootfsFileName(inputs: RootfsInputs): string {
  const hash = createHash('sha256')
    .update(JSON.stringify({ ...inputs, packages: [...inputs.packages].sort(), revision: RECIPE_REVISION }))
    .digest('hex')
    .slice(0, 12);
  return `debian-${inputs.suite}-${hash}.tar.zst`;
}

async function requireCommand(name: string, args: string[], hint: string): Promise<void> {
  const ok = await run(name, args, { timeoutMs: 30_000 }).then(
    (r) => r.code === 0,
    () => false,
  );
  if (!ok) {
    throw new MeshError('MESH_E_PROVISION_TOOL_MISSING', `${name} is not installed or not on PATH: ${hint}`, { details: { tool: name } });
  }
}

async function buildRootfs(file: string, inputs: RootfsInputs, progress: (line: string) => void): Promise<void> {
  if (process.getuid?.() !== 0) {
    throw new MeshError('MESH_E_PROVISION_FAILED', `building the Debian rootfs ${file} needs root (debootstrap)`);
  }
  await requireCommand('debootstrap', ['--version'], 'apt-get install debootstrap');
  await requireCommand('zstd', ['--version'], 'apt-get install zstd');
  const staging = `${file}.tmp-${process.pid}`;
  const root = path.join(staging, 'root');
  const started = Date.now();
  progress(`debian rootfs: debootstrap ${inputs.suite} from ${inputs.mirror} (first run: about 70 s)`);
  try {
    await mkdir(staging, { recursive: true });
    const args = [`--variant=${inputs.variant}`, `--include=${inputs.packages.join(',')}`, inputs.suite, root, inputs.mirror];
    await runChecked('nice', ['-n', '10', 'debootstrap', ...args], 'MESH_E_PROVISION_FAILED', { timeoutMs: 20 * 60_000 });
    // The downloaded .debs are a third of the size and never used again.
    const archives = path.join(root, 'var', 'cache', 'apt', 'archives');
    for (const name of await readdir(archives)) if (name.endsWith('.deb')) await rm(path.join(archives, name));
    const packed = path.join(staging, 'rootfs.tar.zst');
    const tar = `tar -C ${JSON.stringify(root)} --numeric-owner --xattrs --acls -cf - . | nice -n 10 zstd -q -T2 -10 -o ${JSON.stringify(packed)}`;
    await runChecked('bash', ['-o', 'pipefail', '-c', tar], 'MESH_E_PROVISION_FAILED', { timeoutMs: 10 * 60_000 });
    await rename(packed, file);
  } finally {
    await unmountUnder(staging);
    await rm(staging, { recursive: true, force: true });
  }
  progress(`debian rootfs: built ${path.basename(file)} in ${Math.round((Date.now() - started) / 1000)} s`);
}

/** The cached bookworm rootfs archive: path is the .tar.zst, version the suite. Builds it when missing. */
export async function provisionDebianRootfs(options: {
  cacheDir: string;
  env?: NodeJS.ProcessEnv;
  progress?: (line: string) => void;
}): Promise<ToolInfo> {
  const progress = options.progress ?? (() => {});
  const inputs: RootfsInputs = {
    suite: DEBIAN_SUITE,
    variant: 'minbase',
    packages: DEBIAN_ROOTFS_PACKAGES,
    mirror: await machineMirror(options.env ?? process.env),
  };
  const file = path.join(options.cacheDir, rootfsFileName(inputs));
  const info = { path: file, version: DEBIAN_SUITE };
  if (existsSync(file)) return info;
  return underProvisionLock({ cacheDir: options.cacheDir, progress }, async () => {
    if (!existsSync(file)) await buildRootfs(file, inputs, progress);
    return info;
  });
}
