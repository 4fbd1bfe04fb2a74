/** Doctor's checks of the host: the Envoy binary, iptables and capabilities, ports, the data folder. */
import path from 'node:path';
import { toMeshError } from '../../lib/errors.js';
import { parseEnvoyVersion } from '../envoy/envoy-args.js';
import { identityDir } from '../identity/identity-store.js';
import { parsePasswd } from '../tproxy/accounts.js';
import { CAP_NET_ADMIN, hasCapability, parseCapabilities, parseUid } from '../tproxy/privileges.js';
import { type Check, type DoctorContext, enrollFix, fail, pass, warn } from './doctor-types.js';

/** The Envoy release line this agent is built and tested against (scripts/provision.ts pins 1.40.x). */
export const SUPPORTED_ENVOY = { major: 1, minor: 40 } as const;
const SUPPORTED_TEXT = `${SUPPORTED_ENVOY.major}.${SUPPORTED_ENVOY.minor}`;

export const envoyBinaryCheck: Check = {
  id: 'envoy-binary',
  title: 'Envoy binary runs and its version fits',
  async run(ctx) {
    if (!ctx.config.dataPlane.enabled) return pass('dataPlane.enabled is false: the agent runs no Envoy');
    const binary = ctx.config.envoy.binary;
    const setIt = `install Envoy ${SUPPORTED_TEXT} at ${binary}, or set envoy.binary in ${ctx.configFile} to where it is`;
    const ran = await ctx.probes.host.run(binary, ['--version']);
    if (ran.kind === 'failed') {
      if (ran.reason === 'ENOENT') return fail(`envoy.binary ${binary} does not exist`, setIt);
      if (ran.reason === 'EACCES') return fail(`envoy.binary ${binary} is not executable`, `chmod 0755 ${binary}`);
      return fail(`envoy.binary ${binary} did not run: ${ran.reason}`, setIt);
    }
    const version = parseEnvoyVersion(ran.output);
    if (ran.code !== 0 || version === undefined) {
      const last = ran.output.trim().split('\n').pop() ?? '';
      return fail(`${binary} --version exited ${ran.code} without a version (${last.slice(0, 160)})`, setIt);
    }
    const [major, minor] = version.split('.').map(Number) as [number, number];
    const data = { binary, version };
    if (major === SUPPORTED_ENVOY.major && minor === SUPPORTED_ENVOY.minor) return pass(`Envoy ${version} at ${binary}`, data);
    if (major === SUPPORTED_ENVOY.major && minor > SUPPORTED_ENVOY.minor)
      return warn(`Envoy ${version} at ${binary} is newer than the tested ${SUPPORTED_TEXT}.x`, `use Envoy ${SUPPORTED_TEXT}.x`, data);
    return fail(`Envoy ${version} at ${binary} is not ${SUPPORTED_TEXT}.x`, setIt, data);
  },
};

export const iptablesCheck: Check = {
  id: 'iptables',
  title: 'iptables backend and capabilities (transparent proxy)',
  async run(ctx) {
    const tp = ctx.config.transparentProxy;
    if (!tp.enabled) return pass('transparentProxy.enabled is false: no iptables needed');
    let backend: string;
    try {
      backend = await ctx.probes.capture.backend(tp.backend);
    } catch (err) {
      return fail(toMeshError(err).message, 'install iptables (apt-get install iptables / dnf install iptables-nft)');
    }
    const pid = ctx.agent?.pid ?? 'self';
    const who = pid === 'self' ? 'this doctor process (the agent is not running)' : `the agent (pid ${pid})`;
    const status = await ctx.probes.host.procStatus(pid);
    if (status === undefined) return warn(`backend ${backend}; cannot read the capabilities of ${who}`, 'run mesh-agent doctor as root');
    if (!hasCapability(parseCapabilities(status).effective, CAP_NET_ADMIN))
      return fail(
        `backend ${backend}; ${who} lacks CAP_NET_ADMIN`,
        'run the agent as root or with AmbientCapabilities=CAP_NET_ADMIN (the packaged unit has it), or set transparentProxy.enabled: false',
      );
    return pass(`backend ${backend}; ${who} has CAP_NET_ADMIN`, { backend });
  },
};

interface WantedPort {
  port: number;
  protocol: 'tcp' | 'udp';
  /** The config key (or workload) that names it. */
  key: string;
}

export function wantedPorts(ctx: Pick<DoctorContext, 'config' | 'workloads'>): WantedPort[] {
  const c = ctx.config;
  const out: WantedPort[] = [
    { port: Number(c.status.listen.slice(c.status.listen.lastIndexOf(':') + 1)), protocol: 'tcp', key: 'status.listen' },
  ];
  if (c.dataPlane.enabled) {
    out.push({ port: c.envoy.adminPort, protocol: 'tcp', key: 'envoy.adminPort' });
    for (const w of ctx.workloads) out.push({ port: w.meshPort, protocol: 'tcp', key: `meshPort of workload ${w.name}` });
  }
  const tp = c.transparentProxy;
  if (tp.enabled) {
    out.push({ port: tp.outboundPort, protocol: 'tcp', key: 'transparentProxy.outboundPort' });
    out.push({ port: tp.inboundPort, protocol: 'tcp', key: 'transparentProxy.inboundPort' });
    if (tp.dns.capture) {
      out.push({ port: tp.dns.port, protocol: 'udp', key: 'transparentProxy.dns.port' });
      out.push({ port: tp.dns.port, protocol: 'tcp', key: 'transparentProxy.dns.port' });
    }
  }
  return out.filter((p) => p.port !== 0);
}

export const portsCheck: Check = {
  id: 'ports',
  title: 'ports are free, or held by this agent and its Envoy',
  async run(ctx) {
    const wanted = wantedPorts(ctx);
    const sockets = await ctx.probes.sockets.listening();
    const holding = (w: WantedPort) => sockets.filter((s) => s.port === w.port && s.protocol === w.protocol);
    const inodes = new Set(wanted.flatMap((w) => holding(w).map((s) => s.inode)));
    const owners = await ctx.probes.sockets.owners(inodes);
    const ours = new Set([ctx.agent?.pid, ctx.agent?.envoyPid].filter((p): p is number => p !== undefined));
    const conflicts: string[] = [];
    const unknown: string[] = [];
    let held = 0;
    for (const w of wanted) {
      for (const s of holding(w)) {
        const owner = owners.get(s.inode);
        if (owner === undefined) unknown.push(`${w.protocol} ${w.port} (${w.key})`);
        else if (ours.has(owner.pid)) held++;
        else conflicts.push(`${w.protocol} ${w.port} (${w.key}) is held by ${owner.name} (pid ${owner.pid})`);
      }
    }
    const list = wanted.map((w) => `${w.port}/${w.protocol}`).join(', ');
    if (conflicts.length > 0)
      return fail(conflicts.join('; '), 'stop that process, or set the named key to a free port', { ports: wanted, conflicts });
    if (unknown.length > 0)
      return warn(`held by a process this user cannot see: ${unknown.join(', ')}`, 'run mesh-agent doctor as root to see who holds them');
    const running = ctx.agent === undefined ? 'the agent is not running; ' : '';
    return pass(`${running}${held} held by the agent or its Envoy, ${wanted.length - held} free (${list})`, { ports: wanted });
  },
};

const octal = (mode: number) => `0${(mode & 0o777).toString(8)}`;

export const dataDirCheck: Check = {
  id: 'data-dir',
  title: 'data folder owners and modes',
  async run(ctx) {
    const { host } = ctx.probes;
    const dataDir = ctx.config.dataDir;
    const top = await host.stat(dataDir);
    if (top === undefined)
      return fail(`${dataDir} does not exist`, enrollFix(ctx.config, 'run mesh-agent join (it creates the data folder and the identity)'));
    const agentStatus = ctx.agent?.pid === undefined ? undefined : await host.procStatus(ctx.agent.pid);
    const agentUid = agentStatus === undefined ? undefined : parseUid(agentStatus);
    // The agent's user: the running agent's, else the data folder's owner (the package's StateDirectory belongs to it).
    const expectedUid = agentUid ?? top.uid;
    const users = parsePasswd((await host.readText('/etc/passwd')) ?? '');
    const userName = users.find((u) => u.uid === expectedUid)?.name ?? String(expectedUid);
    const problems: string[] = [];
    const fixes: string[] = [];
    const owned = (file: string, uid: number) => {
      if (uid === expectedUid) return;
      problems.push(`${file} is owned by uid ${uid}, not the agent's user ${userName}`);
      fixes.push(`chown -R ${userName} ${file}`);
    };
    if (agentUid !== undefined) owned(dataDir, top.uid);
    if ((top.mode & 0o002) !== 0) {
      problems.push(`${dataDir} is writable by everyone (mode ${octal(top.mode)})`);
      fixes.push(`chmod o-w ${dataDir}`);
    }
    const idDir = identityDir(dataDir);
    const id = await host.stat(idDir);
    if (id === undefined) return fail(`${idDir} does not exist: this host has not joined`, enrollFix(ctx.config, 'run mesh-agent join'));
    owned(idDir, id.uid);
    if ((id.mode & 0o077) !== 0) {
      problems.push(`${idDir} has mode ${octal(id.mode)}, not 0700`);
      fixes.push(`chmod 0700 ${idDir}`);
    }
    const keyFile = path.join(idDir, 'node.key');
    const key = await host.stat(keyFile);
    if (key === undefined) {
      problems.push(`${keyFile} is missing`);
      fixes.push(enrollFix(ctx.config, 'join again: mesh-agent join --force'));
    } else {
      owned(keyFile, key.uid);
      if ((key.mode & 0o077) !== 0) {
        problems.push(`${keyFile} has mode ${octal(key.mode)}, not 0600`);
        fixes.push(`chmod 0600 ${keyFile}`);
      }
    }
    if (problems.length > 0) return fail(problems.join('; '), [...new Set(fixes)].join(' && '), { problems });
    return pass(`${idDir} 0700 and node.key 0600, owned by ${userName}`);
  },
};
