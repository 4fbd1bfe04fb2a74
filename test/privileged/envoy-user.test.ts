/**
 * Privileges with the real `mesh-agent run` as root and the real Envoy:
 * - envoy.user "15337" (a numeric uid with no passwd entry): Envoy runs as
 *   uid/gid 15337 with CapEff, CapPrm, CapInh and CapAmb all 0; xDS works
 *   (traffic through an upstream port); a hot restart (SIGHUP with a changed
 *   envoy.* setting) works and its new epoch is the same user with no
 *   capabilities; Envoy's user cannot read the node's private key.
 * - an agent without CAP_NET_ADMIN and transparentProxy.enabled exits
 *   non-zero with MESH_E_TPROXY_PRIVILEGE before it starts anything.
 * No iptables rule is touched (capture stays off in the first test and the
 * second never starts), so no network namespace is needed.
 */
import { spawnSync } from 'node:child_process';
import { chmod, copyFile, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { AGENT_NODE_FLAGS } from '../../agent/node-flags.js';
import { parseCapabilities } from '../../agent/tproxy/privileges.js';
import { repoRoot } from '../../scripts/repo-root.js';
import { agentFixture, agentStatus } from '../support/agent-process.js';
import { getJson } from '../support/mesh-apps.js';
import { meshHost, meshTraffic, runAgent, startMeshWorld } from '../support/mesh-world.js';
import { privilegedSkipReason } from '../support/netns.js';
import { tools } from '../support/tools.js';
import { waitFor } from '../support/wait.js';

t.setTimeout(180_000);

const skip = await privilegedSkipReason();
if (skip !== undefined) process.stderr.write(`# skipping privileged tests: ${skip}\n`);

const ENVOY_UID = 15337;

async function procOf(pid: number) {
  const text = await readFile(`/proc/${pid}/status`, 'utf8');
  const ids = (field: string) => (new RegExp(`^${field}:[ \\t]*(.*)$`, 'm').exec(text)?.[1] ?? '').trim().split(/\s+/).map(Number);
  return { uid: ids('Uid'), gid: ids('Gid'), groups: (/^Groups:[ \t]*(.*)$/m.exec(text)?.[1] ?? '').trim(), caps: parseCapabilities(text) };
}

interface EnvoyState {
  state: string;
  pid: number;
  epoch: number;
}

t.test('Envoy runs as envoy.user with no capabilities; xDS and hot restart work', { skip: skip ?? false }, async (t) => {
  const w = await startMeshWorld(t);
  const { envoy } = await tools();
  const host = await meshHost(t, {
    join: w.join,
    consulAddr: w.consul.httpAddr,
    nodeName: 'vm-user',
    envoy: { binary: 'PLACEHOLDER', user: String(ENVOY_UID), drainTime: '1s' },
    workloads: w.files(),
  });
  const { fx } = host;
  // Like /var/lib and /usr/bin: the folders above dataDir may be passed through, the binary run by anyone.
  await chmod(fx.base, 0o711);
  const binary = path.join(fx.base, 'envoy');
  await copyFile(envoy.path, binary);
  await chmod(binary, 0o755);
  await writeFile(fx.configFile, (await readFile(fx.configFile, 'utf8')).replace('PLACEHOLDER', binary));

  const agent = runAgent(t, host);
  t.equal((await meshTraffic(w.ports.apiLocal, { agent })).app, 'api', 'xDS works: traffic through Envoy');
  const envoyOf = async () => (await agentStatus<{ envoy: EnvoyState }>(fx.statusAddr)).envoy;
  const checkProc = async (pid: number, what: string) => {
    const p = await procOf(pid);
    t.same(p.uid, [ENVOY_UID, ENVOY_UID, ENVOY_UID, ENVOY_UID], `${what}: uid ${ENVOY_UID}`);
    t.same(p.gid, [ENVOY_UID, ENVOY_UID, ENVOY_UID, ENVOY_UID], `${what}: gid ${ENVOY_UID}`);
    t.equal(p.groups, '', `${what}: no supplementary groups`);
    t.same(
      { eff: p.caps.effective, prm: p.caps.permitted, inh: p.caps.inheritable, amb: p.caps.ambient },
      { eff: 0n, prm: 0n, inh: 0n, amb: 0n },
      `${what}: CapEff, CapPrm, CapInh and CapAmb are 0`,
    );
  };
  const first = await envoyOf();
  await checkProc(first.pid, 'epoch 0');

  // Envoy's user reaches its own folder but none of the rest of dataDir: not the node's private key.
  const identity = path.join(fx.dataDir, 'identity');
  const keyFile = (await readdir(identity)).find((f) => f === 'node.key');
  t.equal(keyFile, 'node.key', 'the node key is on disk');
  const asEnvoy = (args: string[]) =>
    spawnSync('setpriv', ['--reuid', String(ENVOY_UID), '--regid', String(ENVOY_UID), '--clear-groups', '--', ...args], {
      encoding: 'utf8',
    });
  t.not(asEnvoy(['cat', path.join(identity, keyFile as string)]).status, 0, "Envoy's user cannot read the private key");
  t.not(asEnvoy(['ls', fx.dataDir]).status, 0, "Envoy's user cannot list dataDir");
  t.equal(asEnvoy(['ls', path.join(fx.dataDir, 'envoy')]).status, 0, "Envoy's user reaches its own folder");

  // Hot restart: a changed envoy.* setting and SIGHUP; the new epoch is the same user, no capabilities.
  const config = JSON.parse(await readFile(fx.configFile, 'utf8')) as { envoy: Record<string, unknown> };
  config.envoy.accessLog = true;
  await writeFile(fx.configFile, JSON.stringify(config));
  agent.process.kill('SIGHUP');
  const next = await waitFor(
    async () => {
      const e = await envoyOf();
      return e.epoch === 1 && e.state === 'running' ? e : undefined;
    },
    { timeoutMs: 30_000, what: 'the hot restart to epoch 1' },
  );
  t.not(next.pid, first.pid, 'a new Envoy process');
  await checkProc(next.pid, 'epoch 1');
  t.equal((await getJson(w.ports.apiLocal)).app, 'api', 'traffic through the hot-restarted Envoy');
});

t.test('capture without CAP_NET_ADMIN: the agent exits non-zero with MESH_E_TPROXY_PRIVILEGE', { skip: skip ?? false }, async (t) => {
  const fx = await agentFixture('127.0.0.1:1', { transparentProxy: { enabled: true } });
  t.teardown(() => fx.remove());
  const main = path.join(repoRoot(), 'dist', 'agent', 'main.js');
  // Root, but CAP_NET_ADMIN dropped from the bounding set: node starts without it in CapEff.
  const run = spawnSync(
    'capsh',
    ['--drop=cap_net_admin', '--', '-c', 'exec "$0" "$@"', process.execPath, ...AGENT_NODE_FLAGS, main, 'run', '--config', fx.configFile],
    { encoding: 'utf8', timeout: 60_000 },
  );
  t.not(run.status, 0, 'exits non-zero');
  t.match(run.stderr, /MESH_E_TPROXY_PRIVILEGE/);
  t.match(run.stderr, /CAP_NET_ADMIN/);
  t.match(run.stderr, /AmbientCapabilities=CAP_NET_ADMIN/);
  t.notMatch(run.stderr, /mesh-agent running/, 'nothing started');
});
