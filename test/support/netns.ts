/**
 * Test hosts as network namespaces: each host gets its own namespace with an
 * eth0 (one end of a veth pair) on a shared L2 segment, a bridge in a "switch"
 * namespace. Addresses live only inside namespaces this test made, so nothing
 * leaves the machine. Needs root; privilegedSkipReason() says why not.
 */
import { randomBytes } from 'node:crypto';
import { MeshError } from '../../lib/errors.js';
import { run, runChecked } from '../../lib/exec.js';
import { childEnv, type ManagedChild, startChild, untracked } from './child.js';

export interface TestHost {
  readonly name: string;
  readonly netns: string;
  readonly address: string;
  /** Runs a command inside the host's namespace to completion (without tap's hooks in its environment, as spawn). */
  exec(command: string, args: readonly string[], options?: { input?: string; timeoutMs?: number }): ReturnType<typeof run>;
  /** Starts a long-running command inside the host's namespace. */
  spawn(command: string, args: readonly string[]): ManagedChild;
}

export interface TestNetwork {
  readonly id: string;
  readonly hosts: readonly TestHost[];
  readonly namespaces: readonly string[];
  remove(): Promise<void>;
}

/** undefined when privileged tests can run; else the reason they are skipped. */
export async function privilegedSkipReason(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'privileged test: needs root (network namespaces, veth)';
  const ip = await run('ip', ['-V']).catch(() => undefined);
  if (ip === undefined || ip.code !== 0) return 'privileged test: the ip command (iproute2) is not installed';
  return undefined;
}

const ip = (args: string[]) => runChecked('ip', args, 'MESH_E_NETNS', { timeoutMs: 15_000 });

export async function listNetns(): Promise<string[]> {
  const { stdout } = await ip(['netns', 'list']);
  return stdout
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((name) => name !== '');
}

/** The environment variable that sets the first two letters of network ids (default `mt`), so a test can tell its child's namespaces from others'. */
export const NETNS_TAG_ENV = 'MESH_TEST_NETNS_TAG';

/** Two lowercase letters that start this process's network ids: MESH_TEST_NETNS_TAG, or `mt`. */
export function networkTag(env: NodeJS.ProcessEnv = process.env): string {
  const tag = env[NETNS_TAG_ENV];
  if (tag === undefined || tag === '') return 'mt';
  if (!/^[a-z]{2}$/.test(tag))
    throw new Error(`${NETNS_TAG_ENV} must be two lowercase letters (namespace and veth names stay short), not ${JSON.stringify(tag)}`);
  return tag;
}

/**
 * Creates `count` hosts on one segment, 10.<a>.<b>.(i+1)/24. The subnet only
 * exists inside this network's namespaces.
 */
export async function createNetwork(count: number, options: { subnet?: string } = {}): Promise<TestNetwork> {
  const id = `${networkTag()}${randomBytes(3).toString('hex')}`;
  const subnet = options.subnet ?? '10.77.0';
  const switchNs = `${id}-sw`;
  const namespaces: string[] = [];
  const hosts: TestHost[] = [];

  const remove = async () => {
    const problems: string[] = [];
    for (const ns of [...namespaces].reverse()) {
      const result = await run('ip', ['netns', 'del', ns]);
      if (result.code !== 0) problems.push(`${ns}: ${result.stderr.trim()}`);
    }
    namespaces.length = 0;
    if (problems.length > 0) {
      throw new MeshError('MESH_E_NETNS', `removing test namespaces failed: ${problems.join('; ')}`);
    }
  };

  try {
    await ip(['netns', 'add', switchNs]);
    namespaces.push(switchNs);
    await ip(['-n', switchNs, 'link', 'add', 'br0', 'type', 'bridge']);
    await ip(['-n', switchNs, 'link', 'set', 'br0', 'up']);
    for (let i = 0; i < count; i++) {
      const netns = `${id}-h${i}`;
      const address = `${subnet}.${i + 1}`;
      await ip(['netns', 'add', netns]);
      namespaces.push(netns);
      const hostEnd = `${id}h${i}`;
      const switchEnd = `${id}s${i}`;
      await ip(['link', 'add', hostEnd, 'type', 'veth', 'peer', 'name', switchEnd]);
      await ip(['link', 'set', hostEnd, 'netns', netns]);
      await ip(['link', 'set', switchEnd, 'netns', switchNs]);
      await ip(['-n', netns, 'link', 'set', hostEnd, 'name', 'eth0']);
      await ip(['-n', netns, 'addr', 'add', `${address}/24`, 'dev', 'eth0']);
      await ip(['-n', netns, 'link', 'set', 'eth0', 'up']);
      await ip(['-n', netns, 'link', 'set', 'lo', 'up']);
      await ip(['-n', switchNs, 'link', 'set', switchEnd, 'master', 'br0']);
      await ip(['-n', switchNs, 'link', 'set', switchEnd, 'up']);
      hosts.push({
        name: `h${i}`,
        netns,
        address,
        exec: (command, args, opts = {}) => {
          const [program, argv] = untracked('ip', ['netns', 'exec', netns, command, ...args]);
          return run(program, argv, { ...opts, env: childEnv() });
        },
        spawn: (command, args) => startChild('ip', ['netns', 'exec', netns, command, ...args]),
      });
    }
  } catch (err) {
    await remove().catch(() => {});
    throw err;
  }
  return { id, hosts, namespaces: [...namespaces], remove };
}
