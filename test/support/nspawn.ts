/**
 * A booted Debian container for tests that need a real systemd as PID 1 (the
 * package test): the cached bookworm rootfs (scripts/provision-rootfs.ts) is
 * unpacked into a temporary folder and booted with
 *
 *   systemd-nspawn -D ROOT --boot --register=no --keep-unit --private-network --console=pipe
 *
 * The container has only a loopback interface, so everything the test runs
 * (control plane, Consul, agent, workloads) runs inside it. Commands enter
 * every namespace of the container's systemd with nsenter, with a clean
 * environment (no tap hooks). Files go in by writing below ROOT. Stopping sends
 * SIGTERM to the nspawn process (a clean poweroff of the container), SIGKILL
 * after a grace period, then unmounts anything left and removes the folder.
 */
import { chmod, copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Test } from 'tap';
import type { RunResult } from '../../lib/exec.js';
import { run, runChecked } from '../../lib/exec.js';
import { unmountUnder } from '../../scripts/mounts.js';
import { type ManagedChild, startChild } from './child.js';
import { waitFor } from './wait.js';

export interface ExecOptions {
  input?: string;
  timeoutMs?: number;
  /** Extra environment variables, on top of PATH and LANG. */
  env?: Record<string, string>;
}

export interface Container {
  /** The container's root folder on the host. */
  readonly root: string;
  /** The host pid of the container's systemd (PID 1 inside). */
  readonly leader: number;
  /** Runs a program inside the container to completion. */
  exec(command: string, args: readonly string[], options?: ExecOptions): Promise<RunResult>;
  /** Like exec, but a non-zero exit throws with the command, its exit and its output. */
  execChecked(command: string, args: readonly string[], options?: ExecOptions): Promise<RunResult>;
  /** Runs a bash script inside the container (`bash -euo pipefail -c script`), checked. */
  sh(script: string, options?: ExecOptions): Promise<RunResult>;
  /** Copies a host file to a path inside the container (parents created). */
  copyIn(hostPath: string, containerPath: string, mode?: number): Promise<void>;
  /** Writes a file inside the container (parents created). */
  writeFile(containerPath: string, content: string, mode?: number): Promise<void>;
  readFile(containerPath: string): Promise<string>;
  /** The last lines nspawn and the container's console printed. */
  output(): string;
  /** Powers the container off (SIGTERM to nspawn, SIGKILL after graceMs) and removes its folder. */
  stop(graceMs?: number): Promise<void>;
}

const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** undefined when a container can be booted here; else the reason tests that need one are skipped. */
export async function nspawnSkipReason(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'privileged test: needs root (systemd-nspawn, debootstrap)';
  for (const [tool, pkg] of [
    ['systemd-nspawn', 'systemd-container'],
    ['nsenter', 'util-linux'],
    ['zstd', 'zstd'],
  ] as const) {
    const found = await run(tool, ['--version']).then(
      (r) => r.code === 0,
      () => false,
    );
    if (!found) return `privileged test: ${tool} is not installed (apt-get install ${pkg})`;
  }
  return undefined;
}

/** The pid of the first child of `pid` (from /proc/<pid>/task/<tid>/children), or undefined. */
async function childOf(pid: number): Promise<number | undefined> {
  const tasks = await readdir(`/proc/${pid}/task`).catch(() => [] as string[]);
  for (const tid of tasks) {
    const children = await readFile(`/proc/${pid}/task/${tid}/children`, 'utf8').catch(() => '');
    const first = children.trim().split(/\s+/)[0];
    if (first) return Number(first);
  }
  return undefined;
}

function describe(command: string, args: readonly string[], result: RunResult): string {
  const why = result.signal !== null ? `was killed by ${result.signal}` : `exited with ${result.code}`;
  const out = `${result.stdout}${result.stderr}`.trim().split('\n').slice(-30).join('\n');
  return `${command} ${args.join(' ')} ${why} in the container${out ? `:\n${out}` : ''}`;
}

/**
 * Unpacks `rootfsArchive` and boots it; resolves once `systemctl is-system-running --wait`
 * answers inside (running or degraded: the test decides). The container is stopped and
 * its folder removed when the test ends.
 */
export async function bootContainer(
  t: Pick<Test, 'teardown'>,
  rootfsArchive: string,
  options: { bootTimeoutMs?: number } = {},
): Promise<Container> {
  // /var/tmp: on disk, not a tmpfs, and not cleaned while the test runs.
  const dir = await mkdtemp('/var/tmp/mesh-ct-');
  const root = path.join(dir, 'root');
  let nspawn: ManagedChild | undefined;

  const stop = async (graceMs = 20_000) => {
    await nspawn?.stop(graceMs);
    await unmountUnder(dir);
    await rm(dir, { recursive: true, force: true });
  };
  t.teardown(() => stop());

  await mkdir(root);
  await runChecked(
    'tar',
    ['-C', root, '--numeric-owner', '--xattrs', '--acls', '-I', 'zstd -T2', '-xf', rootfsArchive],
    'MESH_E_PROVISION_FAILED',
    {
      timeoutMs: 5 * 60_000,
    },
  );
  // No tap hooks, no host locale or terminal for the container's systemd.
  const child = startChild(
    'systemd-nspawn',
    ['-D', root, '--boot', '--register=no', '--keep-unit', '--private-network', '--console=pipe'],
    {
      env: { PATH, LANG: 'C.UTF-8' },
    },
  );
  nspawn = child;
  const exited = () => child.exited();
  const out = () => child.output();
  const fatal = () => (exited() ? `systemd-nspawn exited:\n${out().slice(-4000)}` : undefined);
  const nspawnPid = child.pid ?? -1;
  const leader = await waitFor(
    async () => {
      const pid = await childOf(nspawnPid);
      if (pid === undefined) return undefined;
      const comm = (await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '')).trim();
      return comm === 'systemd' ? pid : undefined;
    },
    { what: "the container's systemd to start", timeoutMs: 60_000, fatal },
  );

  const exec = (command: string, args: readonly string[], o: ExecOptions = {}) => {
    const env = Object.entries({ PATH, LANG: 'C.UTF-8', ...o.env }).map(([k, v]) => `${k}=${v}`);
    return run('nsenter', ['-t', String(leader), '-a', 'env', '-i', ...env, command, ...args], {
      input: o.input,
      timeoutMs: o.timeoutMs ?? 120_000,
      env: { PATH },
    });
  };
  const execChecked = async (command: string, args: readonly string[], o: ExecOptions = {}) => {
    const result = await exec(command, args, o);
    if (result.code !== 0) throw new Error(describe(command, args, result));
    return result;
  };
  const inside = (p: string) => {
    if (!path.isAbsolute(p)) throw new Error(`a container path must be absolute: ${p}`);
    return path.join(root, path.normalize(p));
  };

  // Until systemd's bus is up, systemctl cannot connect and exits at once: poll, then wait.
  await waitFor(
    async () => {
      const r = await exec('systemctl', ['is-system-running', '--wait'], { timeoutMs: options.bootTimeoutMs ?? 120_000 });
      const state = r.stdout.trim();
      return state === 'running' || state === 'degraded' ? state : undefined;
    },
    {
      what: 'the container to finish booting (systemctl is-system-running --wait)',
      timeoutMs: options.bootTimeoutMs ?? 120_000,
      intervalMs: 200,
      fatal,
    },
  );

  return {
    root,
    leader,
    exec,
    execChecked,
    sh: (script, o) => execChecked('bash', ['-euo', 'pipefail', '-c', script], o),
    async copyIn(hostPath, containerPath, mode) {
      const target = inside(containerPath);
      await mkdir(path.dirname(target), { recursive: true });
      await copyFile(hostPath, target);
      if (mode !== undefined) await chmod(target, mode);
    },
    async writeFile(containerPath, content, mode) {
      const target = inside(containerPath);
      await mkdir(path.dirname(target), { recursive: true });
      await writeFile(target, content, mode === undefined ? undefined : { mode });
      if (mode !== undefined) await chmod(target, mode);
    },
    readFile: (containerPath) => readFile(inside(containerPath), 'utf8'),
    output: out,
    stop,
  };
}
