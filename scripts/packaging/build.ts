/**
 * Builds the .deb and .rpm of each package with nfpm from a finished
 * `npm run build`: stage the files (stage.ts), write the maintainer scripts
 * (scriptlets.ts) and nfpm's YAML (nfpm-config.ts), run nfpm once per format.
 * SOURCE_DATE_EPOCH fixes every time inside the packages, so two builds of the
 * same checkout give the same bytes.
 */
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { MeshError } from '../../lib/errors.js';
import { run, runChecked } from '../../lib/exec.js';
import type { PackagingTools } from '../provision-packaging.js';
import { nfpmYaml } from './nfpm-config.js';
import { PACKAGES, type PackageFormat, type PackageName, type PackageSpec, packageFileName } from './package-spec.js';
import { PHASES, type Phase, readScripts } from './scriptlets.js';
import { type NpmTree, stagePackage } from './stage.js';

export interface BuildOptions {
  readonly root: string;
  readonly version: string;
  /** Seconds since the epoch: every mtime in the packages. */
  readonly sourceDateEpoch: number;
  readonly tools: PackagingTools;
  /** Where the packages go (dist/packages). */
  readonly outDir: string;
  /** Where the files are staged (emptied first). */
  readonly stageDir: string;
  readonly packages?: readonly PackageName[];
  readonly progress?: (line: string) => void;
}

export interface BuiltPackage {
  readonly name: PackageName;
  readonly format: PackageFormat;
  readonly path: string;
}

/** `npm ls --omit=dev --all --json`: the production packages installed in root (exit code ignored: npm also lists what it warns about). */
async function productionTree(root: string): Promise<NpmTree> {
  const result = await run('npm', ['ls', '--omit=dev', '--all', '--json'], { cwd: root, timeoutMs: 120_000 });
  let tree: NpmTree;
  try {
    tree = JSON.parse(result.stdout) as NpmTree;
  } catch {
    throw new MeshError('MESH_E_PROVISION_FAILED', `npm ls --omit=dev --json in ${root} printed no JSON: ${result.stderr.trim()}`);
  }
  if (Object.keys(tree.dependencies ?? {}).length === 0) {
    throw new MeshError('MESH_E_PROVISION_FAILED', `npm ls --omit=dev found no installed packages in ${root}: run npm ci first`);
  }
  return tree;
}

/**
 * Runs the staged programs with the staged node before anything is packed: each
 * answers --version with the package's version, and better-sqlite3's addon loads
 * (an addon built for another Node major, or a missing file, fails here, not on a host).
 */
async function checkStaged(files: string, spec: PackageSpec, version: string): Promise<void> {
  const node = path.join(files, 'lib', 'node', 'bin', 'node');
  const app = path.join(files, 'lib', 'app');
  for (const program of spec.programs) {
    const result = await runChecked(node, [path.join(app, program.main), '--version'], 'MESH_E_PROVISION_FAILED', { cwd: app });
    if (result.stdout.trim() !== `${program.command} ${version}`) {
      throw new MeshError(
        'MESH_E_PROVISION_FAILED',
        `the staged ${program.command} --version printed ${JSON.stringify(result.stdout.trim())}, expected "${program.command} ${version}"`,
      );
    }
  }
  const probe = "import Database from 'better-sqlite3'; new Database(':memory:').prepare('select 1').get();";
  await runChecked(node, ['--input-type=module', '-e', probe], 'MESH_E_PROVISION_FAILED', { cwd: app });
}

export async function buildPackages(options: BuildOptions): Promise<BuiltPackage[]> {
  const progress = options.progress ?? (() => {});
  const names = options.packages ?? (['mesh-agent', 'mesh-controlplane'] as const);
  const production = await productionTree(options.root);
  await mkdir(options.outDir, { recursive: true });
  const built: BuiltPackage[] = [];
  for (const name of names) {
    const spec = PACKAGES[name];
    const dir = path.join(options.stageDir, name);
    progress(`${name}: staging files in ${dir}`);
    const entries = await stagePackage({
      root: options.root,
      spec,
      version: options.version,
      sourceDateEpoch: options.sourceDateEpoch,
      tools: options.tools,
      dir: path.join(dir, 'files'),
      production,
    });
    await checkStaged(path.join(dir, 'files'), spec, options.version);
    const texts = await readScripts(options.root, spec);
    const scripts = {} as Record<Phase, string>;
    await mkdir(path.join(dir, 'scripts'), { recursive: true });
    for (const phase of PHASES) {
      scripts[phase] = path.join(dir, 'scripts', `${phase}.sh`);
      await writeFile(scripts[phase], texts[phase], { mode: 0o755 });
    }
    const config = path.join(dir, 'nfpm.yaml');
    await writeFile(config, nfpmYaml({ spec, version: options.version, mtime: options.sourceDateEpoch, entries, scripts }));
    for (const format of ['deb', 'rpm'] as const) {
      const target = path.join(options.outDir, packageFileName(name, options.version, format));
      // nfpm writes into a partial file renamed when complete: a failed or killed build leaves no package behind.
      const partial = `${target}.partial`;
      await rm(target, { force: true });
      progress(`${name}: nfpm ${format} -> ${target}`);
      try {
        await runChecked(
          options.tools.nfpm.path,
          ['package', '--config', config, '--packager', format, '--target', partial],
          'MESH_E_PROVISION_FAILED',
          {
            env: { ...process.env, SOURCE_DATE_EPOCH: String(options.sourceDateEpoch) },
            timeoutMs: 20 * 60_000,
          },
        );
        await rename(partial, target);
      } finally {
        await rm(partial, { force: true });
      }
      built.push({ name, format, path: target });
    }
  }
  return built;
}

/** SOURCE_DATE_EPOCH from the environment, else the time of the checkout's last commit. */
export async function sourceDateEpoch(root: string, env: NodeJS.ProcessEnv): Promise<number> {
  const raw =
    env.SOURCE_DATE_EPOCH ?? (await runChecked('git', ['log', '-1', '--format=%ct'], 'MESH_E_USAGE', { cwd: root })).stdout.trim();
  if (!/^\d+$/.test(raw)) throw new MeshError('MESH_E_USAGE', `SOURCE_DATE_EPOCH must be a number of seconds, got ${JSON.stringify(raw)}`);
  return Number(raw);
}
