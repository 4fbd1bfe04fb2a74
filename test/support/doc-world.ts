/**
 * A place to run the commands of one document: a temporary root that stands in
 * for / (the docs' /etc/... and /var/... paths move under it), free loopback
 * ports in place of the ports the docs show, `mesh-agent`, `mesh-controlplane`
 * and `meshctl` on PATH (wrappers around the built dist/ programs), the
 * provisioned Envoy for /usr/bin/envoy, and a Consul dev agent for
 * 127.0.0.1:8500 when the document runs an agent. Long-running commands run in
 * the background until the world is closed.
 */
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { loadAgentConfig } from '../../agent/config/load.js';
import { AGENT_NODE_FLAGS, agentEnvAssignments } from '../../agent/node-flags.js';
import { DEFAULT_DATA_DIR } from '../../controlplane/cli/commands.js';
import { run } from '../../lib/exec.js';
import { repoRoot } from '../../scripts/repo-root.js';
import { childEnv, type ManagedChild, startChild, untracked } from './child.js';
import { type ConsulDev, startConsulDev } from './consul.js';
import { shellWords } from './doc-blocks.js';
import { AGENT_CONFIG_FILE } from './doc-steps.js';
import { freePorts } from './ports.js';
import { tools } from './tools.js';
import { httpGet, waitFor } from './wait.js';

/** Ports the docs show; each becomes a free loopback port (8500 becomes the Consul dev agent's). */
export const DOC_PORTS = [8443, 8500, 15000, 15100, 8080, 18080, 9001, 9002] as const;
const CONSUL_PORT = 8500;

export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface DocWorld {
  readonly root: string;
  /** The working folder of every command (relative paths such as vm1.token land here). */
  readonly work: string;
  /** The docs' paths, hosts and ports replaced by this world's. */
  substitute(text: string): string;
  /** Writes a ```lang file=PATH block (PATH and body substituted). */
  writeFile(docPath: string, body: string): Promise<void>;
  run(command: string): Promise<CommandResult>;
  /** Starts a long-running command and waits until it is ready (`program command` says which readiness). */
  start(command: string, kind: string): Promise<void>;
  /** Stops the background commands, newest first; returns what went wrong (a non-zero exit). */
  close(): Promise<string[]>;
}

const COMMAND_TIMEOUT_MS = 120_000;

/**
 * Every doc port standing alone (not part of a longer number, a version or a name), in one pattern: one pass, so a
 * real port that happens to equal another doc port is left as it is.
 */
const DOC_PORT_PATTERN = new RegExp(`(?<![\\w.])(${DOC_PORTS.join('|')})(?![\\w])`, 'g');

async function wrappers(bin: string, substitute: (text: string) => string): Promise<void> {
  const dist = path.join(repoRoot(), 'dist');
  const node = process.execPath;
  const scripts: Record<string, string> = {
    'mesh-controlplane': `exec "${node}" "${dist}/controlplane/main.js" "$@"`,
    // meshctl's default --data-dir, in this world (not for the offline commands, which have no such option).
    meshctl: [
      `case "$1" in cert|version|help) ;; *) case " $* " in *" --data-dir"*) ;; *) set -- "$@" --data-dir "${substitute(DEFAULT_DATA_DIR)}" ;; esac ;; esac`,
      `exec "${node}" "${dist}/controlplane/cli/main.js" "$@"`,
    ].join('\n'),
    // mesh-agent status reads /etc/mesh-agent/agent.yaml by default: this world's.
    'mesh-agent': [
      `if [ "$1" = status ]; then case " $* " in *" --config"*|*" --address"*) ;; *) set -- "$@" --config "${substitute(AGENT_CONFIG_FILE)}" ;; esac; fi`,
      `exec env ${agentEnvAssignments().join(' ')} "${node}" ${AGENT_NODE_FLAGS.join(' ')} "${dist}/agent/main.js" "$@"`,
    ].join('\n'),
  };
  await mkdir(bin, { recursive: true });
  for (const [name, body] of Object.entries(scripts)) {
    const file = path.join(bin, name);
    await writeFile(file, `#!/bin/sh\n${body}\n`);
    await chmod(file, 0o755);
  }
}

function optionValue(words: readonly string[], flag: string): string | undefined {
  for (const [i, word] of words.entries()) {
    if (word === flag) return words[i + 1];
    if (word.startsWith(`${flag}=`)) return word.slice(flag.length + 1);
  }
  return undefined;
}

export async function createDocWorld(options: { consul: boolean }): Promise<DocWorld> {
  // Short: the control plane's admin socket path must fit in 107 bytes.
  const root = await mkdtemp(path.join(os.tmpdir(), 'mdw-'));
  const work = path.join(root, 'work');
  await mkdir(work);
  const background: Array<{ command: string; child: ManagedChild }> = [];
  let consul: ConsulDev | undefined;
  try {
    const { envoy } = await tools();
    if (options.consul) consul = await startConsulDev();
    const free = await freePorts(DOC_PORTS.length);
    const ports = new Map<number, number>(DOC_PORTS.map((p, i) => [p, p === CONSUL_PORT && consul ? consul.httpPort : (free[i] ?? 0)]));
    const substitute = (text: string): string => {
      const out = text
        .replaceAll('/usr/bin/envoy', envoy.path)
        .replace(/(?<![\w./-])\/(etc|var)\//g, `${root}/$1/`)
        .replaceAll('cp.example.internal', '127.0.0.1')
        .replaceAll('0.0.0.0', '127.0.0.1');
      return out.replace(DOC_PORT_PATTERN, (doc) => String(ports.get(Number(doc)) ?? doc));
    };
    const bin = path.join(root, 'bin');
    await wrappers(bin, substitute);
    const env = { ...childEnv(), PATH: `${bin}:${process.env.PATH ?? ''}` };

    const ready = async (command: string, kind: string, child: ManagedChild) => {
      const fatal = () => (child.exited() ? `${kind} exited:\n${child.output().slice(-3000)}` : undefined);
      if (kind === 'mesh-controlplane run') {
        await waitFor(async () => /"listen":"/.test(child.output()) || undefined, {
          timeoutMs: 60_000,
          what: 'mesh-controlplane to listen',
          fatal,
        });
        return;
      }
      if (kind === 'mesh-agent run') {
        const file = optionValue(shellWords(command), '--config');
        if (file === undefined) throw new Error(`${command}: no --config FILE to find the status listener in`);
        const config = await loadAgentConfig(path.resolve(work, file), { hostname: async () => os.hostname() });
        let last = '';
        try {
          await waitFor(
            async () => {
              const res = await httpGet(`http://${config.status.listen}/status`).catch(() => undefined);
              last = res?.body ?? last;
              return res !== undefined && JSON.parse(res.body).healthy === true ? true : undefined;
            },
            { timeoutMs: 120_000, what: 'mesh-agent to be healthy', fatal },
          );
        } catch (err) {
          throw new Error(`${(err as Error).message}\nlast status: ${last}\n${child.output().slice(-3000)}`);
        }
        return;
      }
      throw new Error(`no readiness check for ${kind}`);
    };

    return {
      root,
      work,
      substitute,
      async writeFile(docPath, body) {
        const file = path.resolve(work, substitute(docPath));
        await mkdir(path.dirname(file), { recursive: true });
        await writeFile(file, substitute(body.endsWith('\n') ? body : `${body}\n`));
      },
      async run(command) {
        const [program, args] = untracked('bash', ['-o', 'pipefail', '-c', command]);
        const result = await run(program, args, { cwd: work, env, timeoutMs: COMMAND_TIMEOUT_MS });
        return { code: result.code, stdout: result.stdout, stderr: result.stderr };
      },
      async start(command, kind) {
        const child = startChild('bash', ['-c', `exec ${command}`], { cwd: work, env });
        background.push({ command, child });
        await ready(command, kind, child);
      },
      async close() {
        const problems: string[] = [];
        for (const { command, child } of background.reverse()) {
          await child.stop(30_000);
          const { exitCode, signalCode } = child.process;
          if (exitCode !== 0)
            problems.push(`${command}: stopped with SIGTERM, exit ${exitCode ?? signalCode}\n${child.output().slice(-2000)}`);
        }
        await consul?.stop();
        await rm(root, { recursive: true, force: true });
        return problems;
      },
    };
  } catch (err) {
    for (const { child } of background) await child.stop(5_000);
    await consul?.stop();
    await rm(root, { recursive: true, force: true });
    throw err;
  }
}
