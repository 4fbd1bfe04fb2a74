/**
 * The privileges the agent settles at start, before any side effect: capture
 * needs CAP_NET_ADMIN (MESH_E_TPROXY_PRIVILEGE otherwise), and Envoy's user
 * and the setpriv arguments that start it with no capabilities. Reads
 * /proc/self/status, /etc/passwd and /etc/group once.
 */
import { readFile } from 'node:fs/promises';
import type { AgentConfig } from '../config/schema.js';
import { type RunAs, resolveRunAs, setprivArgs } from '../envoy/envoy-run-as.js';
import { parseCapabilities, parseUid, readProcStatus, requireCaptureCapability } from '../tproxy/privileges.js';

export interface EnvoyLaunch {
  /** Envoy's own user; undefined: the agent's. */
  readonly runAs?: RunAs;
  /** Arguments of setpriv before `-- envoy ...`; undefined: spawn Envoy directly. */
  readonly setpriv?: readonly string[];
  readonly agentUid: number;
}

export interface PrivilegeSources {
  procStatus(): Promise<string>;
  readEtc(name: 'passwd' | 'group'): Promise<string>;
}

const hostSources: PrivilegeSources = {
  procStatus: () => readProcStatus('self'),
  readEtc: (name) => readFile(`/etc/${name}`, 'utf8').catch(() => ''),
};

export async function settlePrivileges(config: AgentConfig, sources: PrivilegeSources = hostSources): Promise<EnvoyLaunch> {
  const status = await sources.procStatus();
  const capture = config.transparentProxy.enabled;
  if (capture) requireCaptureCapability(status);
  const agentUid = parseUid(status) ?? process.getuid?.() ?? 0;
  const runAs = resolveRunAs({
    user: config.envoy.user,
    group: config.envoy.group,
    agentUid,
    passwd: await sources.readEtc('passwd'),
    groups: await sources.readEtc('group'),
    capture,
  });
  const setpriv = setprivArgs(runAs, { uid: agentUid, caps: parseCapabilities(status) });
  return { agentUid, ...(runAs === undefined ? {} : { runAs }), ...(setpriv === undefined ? {} : { setpriv }) };
}
