/**
 * Lays out one package's files in a staging folder, as they go under
 * /usr/lib/<name>/ (see package-spec.ts), and lists them for nfpm. The app is
 * dist/ of a finished build (source maps left out); node_modules are the
 * production packages `npm ls --omit=dev` names (less install-only ones), copied from the checkout's own
 * install (better-sqlite3's addon there is built for this Node 20) with build
 * leftovers and type declarations left out; ELF objects are stripped.
 */
import { existsSync } from 'node:fs';
import { copyFile, cp, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { MeshError } from '../../lib/errors.js';
import { runChecked } from '../../lib/exec.js';
import type { PackagingTools } from '../provision-packaging.js';
import type { StagedEntry } from './nfpm-config.js';
import { copyrightText, debianChangelog, gzipReproducible, lintianOverrides } from './package-docs.js';
import { libDir, type PackageSpec, wrapperText } from './package-spec.js';

/** Files of dist/ and node_modules that a package leaves out (relative paths, '/'-separated). */
export function keepAppFile(rel: string): boolean {
  const parts = rel.split('/');
  // Dot files (.npmignore, .eslintrc, .travis.yml, .bin/ links) are for a package's authors, not its users.
  if (parts.some((p) => p.startsWith('.'))) return false;
  // A dependency's own tests: node_modules/<pkg>/test or tests, or @scope/<pkg>/test.
  const inPkg = rel.startsWith('node_modules/') ? parts.slice(parts[1]?.startsWith('@') ? 3 : 2) : [];
  if (inPkg.length > 0 && ['test', 'tests', '__tests__'].includes(inPkg[0] ?? '')) return false;
  if (rel.endsWith('.map') || rel.endsWith('.d.ts') || rel.endsWith('.d.mts') || rel.endsWith('.d.cts')) return false;
  // Addons for the Bare runtime (bare-fs and friends, optional dependencies of tar-fs under
  // @kubernetes/client-node): Node never loads them.
  if (rel.endsWith('.bare')) return false;
  // Prebuilt addons of other platforms: the packages are linux amd64.
  const prebuilt = inPkg.indexOf('prebuilds');
  if (prebuilt >= 0 && inPkg[prebuilt + 1] !== undefined && inPkg[prebuilt + 1] !== 'linux-x64') return false;
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

/** What `npm ls --omit=dev --all --json` prints: a tree of dependencies by name. */
export interface NpmTree {
  readonly dependencies?: Readonly<Record<string, NpmTree>>;
}

/**
 * Dependencies only an install step runs: better-sqlite3's prebuild-install
 * (fetches a prebuilt addon at npm install time; the package carries the addon
 * itself), with everything only it needs.
 */
export const INSTALL_ONLY: readonly string[] = ['prebuild-install'];

/** The names of the production packages the programs load: the tree's names, without install-only subtrees, sorted. */
export function productionPackages(tree: NpmTree, installOnly: readonly string[] = INSTALL_ONLY): string[] {
  const names = new Set<string>();
  const visit = (node: NpmTree) => {
    for (const [name, child] of Object.entries(node.dependencies ?? {})) {
      if (installOnly.includes(name)) continue;
      names.add(name);
      visit(child);
    }
  };
  visit(tree);
  return [...names].sort();
}

/**
 * Mode in the package (rel is relative to /usr/lib/<name>): folders 0755; the
 * node and Envoy binaries 0755; everything of the app 0644 (node runs it; no
 * script in it is run by its #! line).
 */
export function packagedMode(rel: string, isDir: boolean): number {
  if (isDir) return 0o755;
  return rel === 'node/bin/node' || rel === 'envoy/envoy' ? 0o755 : 0o644;
}

/** A #! line of a JavaScript file, blanked to a comment of the same line count (node runs these files itself). */
export function withoutHashbang(text: string): string | undefined {
  return text.startsWith('#!') ? `//${text.slice(text.indexOf('\n') === -1 ? text.length : text.indexOf('\n'))}` : undefined;
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
async function walk(dir: string, rel = ''): Promise<{ rel: string; isDir: boolean }[]> {
  const out: { rel: string; isDir: boolean }[] = [];
  const names = (await readdir(path.join(dir, rel))).sort();
  for (const name of names) {
    const r = rel === '' ? name : `${rel}/${name}`;
    const info = await stat(path.join(dir, r));
    out.push({ rel: r, isDir: info.isDirectory() });
    if (info.isDirectory()) out.push(...(await walk(dir, r)));
  }
  return out;
}

export interface StageInput {
  readonly root: string;
  readonly spec: PackageSpec;
  readonly version: string;
  /** SOURCE_DATE_EPOCH: the changelog's date. */
  readonly sourceDateEpoch: number;
  readonly tools: PackagingTools;
  /** The folder to stage into (emptied first). */
  readonly dir: string;
  /** `npm ls --omit=dev --all --json` of root. */
  readonly production: NpmTree;
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
  for (const name of productionPackages(input.production, [...INSTALL_ONLY, ...spec.leaveOut])) {
    // One only installed nested (inside another package's node_modules) comes with that package.
    if (!existsSync(path.join(root, 'node_modules', name))) continue;
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
    if (!f.isDir && f.rel.startsWith('app/') && /\.(c|m)?js$|\/bin\/[^/.]+$/.test(f.rel)) {
      const blanked = withoutHashbang(await readFile(src, 'utf8'));
      if (blanked !== undefined) await writeFile(src, blanked);
    }
    const dst = `${libDir(spec.name)}/${f.rel}`;
    entries.push(f.isDir ? { dst, mode: 0o755 } : { src, dst, mode: packagedMode(f.rel, false) });
  }

  await mkdir(path.join(dir, 'bin'), { recursive: true });
  for (const program of spec.programs) {
    const src = path.join(dir, 'bin', program.command);
    await writeFile(src, wrapperText(spec.name, program));
    entries.push({ src, dst: `/usr/bin/${program.command}`, mode: 0o755 });
  }
  for (const config of spec.configFiles) {
    entries.push({ src: path.join(root, config.source), dst: config.destination, mode: 0o644, type: 'config|noreplace' });
  }
  const etc = `/etc/${spec.name}`;
  entries.push({ dst: etc, mode: 0o755 });
  for (const d of spec.configDirs) entries.push({ dst: d, mode: 0o755 });
  const doc = path.join(dir, 'doc');
  await mkdir(doc, { recursive: true });
  const docs: { name: string; data: string | Buffer; dst: string; packager?: 'deb' | 'rpm'; type?: 'license' }[] = [
    { name: 'copyright', data: copyrightText(spec, input.sourceDateEpoch), dst: `/usr/share/doc/${spec.name}/copyright`, packager: 'deb' },
    {
      name: 'copyright',
      data: copyrightText(spec, input.sourceDateEpoch),
      dst: `/usr/share/licenses/${spec.name}/copyright`,
      packager: 'rpm',
      type: 'license',
    },
    {
      name: 'changelog.gz',
      data: gzipReproducible(debianChangelog(spec, input.version, input.sourceDateEpoch)),
      dst: `/usr/share/doc/${spec.name}/changelog.gz`,
      packager: 'deb',
    },
    { name: 'lintian-overrides', data: lintianOverrides(spec), dst: `/usr/share/lintian/overrides/${spec.name}`, packager: 'deb' },
  ];
  for (const d of docs) {
    await writeFile(path.join(doc, d.name), d.data);
    entries.push({
      src: path.join(doc, d.name),
      dst: d.dst,
      mode: 0o644,
      ...(d.packager ? { packager: d.packager } : {}),
      ...(d.type ? { type: d.type } : {}),
    });
  }
  for (const unit of spec.units) {
    entries.push({ src: path.join(root, unit), dst: `/lib/systemd/system/${path.basename(unit)}`, mode: 0o644 });
  }
  return entries;
}
