/** `npm run package`: builds the .deb and .rpm of mesh-agent and mesh-controlplane into dist/packages/. */
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { MeshError, toMeshError } from '../lib/errors.js';
import { buildPackages, sourceDateEpoch } from './packaging/build.js';
import { checkVersion, PACKAGE_NAMES, type PackageName } from './packaging/package-spec.js';
import { defaultCacheDir } from './provision.js';
import { provisionPackaging } from './provision-packaging.js';
import { repoRoot } from './repo-root.js';

const USAGE = `Usage: npm run package [-- --version V] [--only mesh-agent|mesh-controlplane] [--out DIR]

Builds, from the compiled app in dist/ (npm run package builds it first):
  dist/packages/mesh-agent_<version>_amd64.deb         dist/packages/mesh-agent-<version>.x86_64.rpm
  dist/packages/mesh-controlplane_<version>_amd64.deb  dist/packages/mesh-controlplane-<version>.x86_64.rpm
with nfpm, the Node.js runtime and Envoy provisioned into the cache folder (MESH_CACHE_DIR, else
$XDG_CACHE_HOME/vm-mesh, else ~/.cache/vm-mesh). Every time inside the packages is
SOURCE_DATE_EPOCH (default: the time of the last commit), so two builds give the same bytes.

Options:
  --version V   the packages' version (default: package.json's)
  --only NAME   build only this package
  --out DIR     where the packages go (default dist/packages)
  --help        show this help
`;

async function main(): Promise<number> {
  let values: { version?: string; only?: string; out?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      options: { version: { type: 'string' }, only: { type: 'string' }, out: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    }));
  } catch (err) {
    process.stderr.write(`package: MESH_E_USAGE: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const root = repoRoot();
  const version = values.version ?? (JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string }).version;
  const bad = checkVersion(version);
  if (bad !== undefined) throw new MeshError('MESH_E_USAGE', `--version ${version}: ${bad}`);
  if (values.only !== undefined && !PACKAGE_NAMES.includes(values.only as PackageName)) {
    throw new MeshError('MESH_E_USAGE', `--only ${values.only}: must be one of ${PACKAGE_NAMES.join(', ')}`);
  }
  const progress = (line: string) => process.stderr.write(`package: ${line}\n`);
  const tools = await provisionPackaging({ root, cacheDir: defaultCacheDir(process.env), progress });
  // A staging folder of this run's own: two builds at once (the package tests) never write into each other's files.
  await mkdir(path.join(root, 'dist'), { recursive: true });
  const stageDir = await mkdtemp(path.join(root, 'dist', 'package-stage-'));
  let built: Awaited<ReturnType<typeof buildPackages>>;
  try {
    built = await buildPackages({
      root,
      version,
      sourceDateEpoch: await sourceDateEpoch(root, process.env),
      tools,
      outDir: path.resolve(values.out ?? path.join(root, 'dist', 'packages')),
      stageDir,
      packages: values.only === undefined ? PACKAGE_NAMES : [values.only as PackageName],
      progress,
    });
  } finally {
    await rm(stageDir, { recursive: true, force: true });
  }
  for (const p of built) process.stdout.write(`${p.path}\n`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    const e = toMeshError(err, 'MESH_E_PROVISION_FAILED');
    process.stderr.write(`package: ${e.code}: ${e.message}\n`);
    process.exit(e.code === 'MESH_E_USAGE' ? 2 : 1);
  },
);
