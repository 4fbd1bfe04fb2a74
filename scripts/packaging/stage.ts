/**
 * Lays out one package's files in a staging folder, as they go under
 * /usr/lib/<name>/ (see package-spec.ts), and lists them for nfpm. The app is
 * dist/ of a finished build (source maps left out); node_modules are the
 * production packages `npm ls --omit=dev` names, copied from the checkout's own
 * install (better-sqlite3's addon there is built for this Node 20) with build
 * leftovers and type declarations left out; ELF objects are stripped.
 */
import { copyFile, cp, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { MeshError } from '../../lib/errors.js';
import { runChecked } from '../../lib/exec.js';
import type { PackagingTools } from '../provision-packaging.js';
import type { StagedEntry } from './nfpm-config.js';
import { libDir, type PackageSpec, wrapperText } from './package-spec.js';

/** Files of dist/ and node_modules that a package leaves out (relative paths, '/'-separated). */
export function keepAppFile(rel: string): boolean {
  if (rel.endsWith('.map') || rel.endsWith('.d.ts') || rel.endsWith('.d.mts') || rel.endsWith('.d.cts')) return false;
  // better-sqlite3: only the addon itself, not its sources, SQLite's amalgamation or the object files.
  const sqlite = /(^|\/)node_modules\/better-sqlite3\/(.*)$/.exec(rel);
  if (sqlite?.[2] !== undefined) {
    const inner = sqlite[2];
    const top = inner.split('/')[0];
    if (top === 'deps' || top === 'src' || inner === 'binding.gyp') return false;
    if (top === 'build') return ['build', 'build/Release', 'build/Release/better_sqlite3.node'].includes(inner);
  }
  return true;
}

/** The production packages to copy: folders directly under node_modules (scoped ones as @scope/name). */
export function topLevelPackages(root: string, parseable: string): string[] {
  const prefix = path.join(root, 'node_modules') + path.sep;
  const top = new Set<string>();
  for (const line of parseable.split('\n')) {
    if (!line.startsWith(prefix)) continue;
    const parts = line.slice(prefix.length).split(path.sep);
    const name = parts[0]?.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
    if (name) top.add(name);
  }
  return [...top].sort();
}

/** Mode in the package: folders and executables 0755, the rest 0644 (shared objects too). */
export function packagedMode(rel: string, sourceMode: number, isDir: boolean): number {
  if (isDir) return 0o755;
  if (rel.endsWith('.node') || rel.endsWith('.so')) return 0o644;
  return (sourceMode & 0o111) !== 0 ? 0o755 : 0o644;
}

async function copyFiltered(from: string, to: string, relBase: string): Promise<void> {
  await cp(from, to, {
    recursive: true,
    verbatimSymlinks: true,
    filter: (src) => keepAppFile(path.posix.join(relBase, path.relative(from, src).split(path.sep).join('/'))),
  });
}

async function isElf(file: string): Promise<boolean> {
  const data = await readFile(file);
  return data.length > 4 && data[0] === 0x7f && data[1] === 0x45 && data[2] === 0x4c && data[3] === 0x46;
}

/** Every file and folder under dir, sorted, with paths relative to it. */
async function walk(dir: string, rel = ''): Promise<{ rel: string; isDir: boolean; mode: number }[]> {
  const out: { rel: string; isDir: boolean; mode: number }[] = [];
  const names = (await readdir(path.join(dir, rel))).sort();
  for (const name of names) {
    const r = rel === '' ? name : `${rel}/${name}`;
    const info = await stat(path.join(dir, r));
    out.push({ rel: r, isDir: info.isDirectory(), mode: info.mode });
    if (info.isDirectory()) out.push(...(await walk(dir, r)));
  }
  return out;
}

export interface StageInput {
  readonly root: string;
  readonly spec: PackageSpec;
  readonly version: string;
  readonly tools: PackagingTools;
  /** The folder to stage into (emptied first). */
  readonly dir: string;
  /** `npm ls --omit=dev --all --parseable` of root. */
  readonly productionPaths: string;
}

/** Stages the package's files into input.dir and returns every entry of the package. */
export async function stagePackage(input: StageInput): Promise<StagedEntry[]> {
  const { root, spec, dir } = input;
  await rm(dir, { recursive: true, force: true });
  const lib = path.join(dir, 'lib');
  const app = path.join(lib, 'app');
  for (const d of spec.distDirs) {
    const from = path.join(root, 'dist', d);
    await stat(from).catch(() => {
      throw new MeshError('MESH_E_PROVISION_FAILED', `${from} is missing: run npm run build first`);
    });
    await copyFiltered(from, path.join(app, 'dist', d), `dist/${d}`);
  }
  const pkgJson = { name: 'vm-mesh', version: input.version, private: true, type: 'module' };
  await writeFile(path.join(app, 'package.json'), `${JSON.stringify(pkgJson, null, 2)}\n`);
  for (const name of topLevelPackages(root, input.productionPaths)) {
    await copyFiltered(path.join(root, 'node_modules', name), path.join(app, 'node_modules', name), `node_modules/${name}`);
  }
  await mkdir(path.join(lib, 'node', 'bin'), { recursive: true });
  await copyFile(path.join(input.tools.node.path, 'bin', 'node'), path.join(lib, 'node', 'bin', 'node'));
  await copyFile(path.join(input.tools.node.path, 'LICENSE'), path.join(lib, 'node', 'LICENSE'));
  if (spec.bundlesEnvoy) {
    await mkdir(path.join(lib, 'envoy'), { recursive: true });
    await copyFile(input.tools.envoy.path, path.join(lib, 'envoy', 'envoy'));
    await copyFile(input.tools.envoy.license, path.join(lib, 'envoy', 'LICENSE'));
  }

  const entries: StagedEntry[] = [{ dst: libDir(spec.name), mode: 0o755 }];
  for (const f of await walk(lib)) {
    const src = path.join(lib, f.rel);
    if (!f.isDir && f.rel.endsWith('.node') && (await isElf(src))) {
      await runChecked('strip', ['--strip-unneeded', src], 'MESH_E_PROVISION_FAILED');
    }
    const dst = `${libDir(spec.name)}/${f.rel}`;
    entries.push(f.isDir ? { dst, mode: 0o755 } : { src, dst, mode: packagedMode(f.rel, f.mode, false) });
  }

  await mkdir(path.join(dir, 'bin'), { recursive: true });
  for (const program of spec.programs) {
    const src = path.join(dir, 'bin', program.command);
    await writeFile(src, wrapperText(spec.name, program));
    entries.push({ src, dst: `/usr/bin/${program.command}`, mode: 0o755 });
  }
  for (const config of spec.configFiles) {
    entries.push({ src: path.join(root, config.source), dst: config.destination, mode: 0o644, config: true });
  }
  const etc = `/etc/${spec.name}`;
  entries.push({ dst: etc, mode: 0o755 });
  for (const d of spec.configDirs) entries.push({ dst: d, mode: 0o755 });
  for (const unit of spec.units) {
    entries.push({ src: path.join(root, unit), dst: `/lib/systemd/system/${path.basename(unit)}`, mode: 0o644 });
  }
  return entries;
}
