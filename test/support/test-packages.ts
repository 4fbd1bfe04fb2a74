/**
 * The packages the package tests read and install: all four (mesh-agent and
 * mesh-controlplane, .deb and .rpm) at PACKAGE_VERSION with SOURCE_DATE_EPOCH
 * PACKAGE_EPOCH, built by `npm run package` (niced: two shared cores) once per
 * test run and shared by packages.test.ts and packages-boot.test.ts.
 */
import path from 'node:path';
import type { Test } from 'tap';
import { runChecked } from '../../lib/exec.js';
import { PACKAGES, type PackageFormat, type PackageName, packageFileName } from '../../scripts/packaging/package-spec.js';
import { repoRoot } from '../../scripts/repo-root.js';
import { sharedBuild } from './shared-build.js';

export const PACKAGE_VERSION = '0.1.1';
export const PACKAGE_EPOCH = 1_700_000_000;

export interface PackageFile {
  readonly name: PackageName;
  readonly format: PackageFormat;
  readonly path: string;
}

/** Runs `npm run package` (dist/scripts/package-main.js) into out with the fixed SOURCE_DATE_EPOCH. */
export async function runPackageBuild(out: string, args: string[] = []): Promise<void> {
  const script = path.join(repoRoot(), 'dist', 'scripts', 'package-main.js');
  await runChecked('nice', ['-n', '10', process.execPath, script, '--out', out, ...args], 'MESH_E_INTERNAL', {
    timeoutMs: 15 * 60_000,
    env: { ...process.env, SOURCE_DATE_EPOCH: String(PACKAGE_EPOCH) },
  });
}

/** The files of all four packages at version in dir. */
export function packageFiles(
  dir: string,
  version: string,
  names: readonly PackageName[] = Object.keys(PACKAGES) as PackageName[],
): PackageFile[] {
  return names.flatMap((name) =>
    (['deb', 'rpm'] as const).map((format) => ({ name, format, path: path.join(dir, packageFileName(name, version, format)) })),
  );
}

/** All four packages at PACKAGE_VERSION, built once per test run (see shared-build.ts). */
export async function sharedPackages(t: Pick<Test, 'teardown' | 'comment'>): Promise<PackageFile[]> {
  const dir = await sharedBuild(t, `packages-${PACKAGE_VERSION}`, (out) => runPackageBuild(out, ['--version', PACKAGE_VERSION]));
  return packageFiles(dir, PACKAGE_VERSION);
}
