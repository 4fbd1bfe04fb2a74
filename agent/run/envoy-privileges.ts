/**
 * The privileges the agent settles at start, before any side effect: capture
 * needs CAP_NET_ADMIN (MESH_E_TPROXY_PRIVILEGE otherwise), and Envoy's user
 * and the setpriv arguments that start it with no capabilities. Reads
 * /proc/self/status, /etc/passwd and /etc/group once.
 */
import { isMeshError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import type { AgentConfig } from '../config/schema.js';
import { type RunAs, setprivArgs } from '../envoy/envoy-run-as.js';
import { type Accounts, readAccounts } from '../tproxy/accounts.js';
import { resolveEnvoyUser } from '../tproxy/facts.js';
import { parseCapabilities, parseGid, parseUid, readProcStatus, requireCaptureCapability } from '../tproxy/privileges.js';

export interface EnvoyLaunch {
  /** Envoy's own user; undefined: the agent's. */
  readonly runAs?: RunAs;
  /** Arguments of setpriv before `-- envoy ...`; undefined: spawn Envoy directly. */
  readonly setpriv?: readonly string[];
  readonly agentUid: number;
}

export interface PrivilegeSources {
  procStatus(): Promise<string>;
  accounts(): Promise<Accounts>;
}

const hostSources: PrivilegeSources = { procStatus: () => readProcStatus('self'), accounts: () => readAccounts() };

/**
 * Envoy's user is resolveEnvoyUser's (envoy.user, else mesh-envoy for a root
 * agent, else the agent's own). One exception keeps agents without capture
 * working on hosts that have no mesh-envoy user: a root agent with
 * envoy.user unset and capture off runs Envoy as root, still with every
 * capability set cleared (a warning says so).
 */
export async function settlePrivileges(config: AgentConfig, log: Logger, sources: PrivilegeSources = hostSources): Promise<EnvoyLaunch> {
  const status = await sources.procStatus();
  const capture = config.transparentProxy.enabled;
  if (capture) requireCaptureCapability(status);
  const agentUid = parseUid(status) ?? process.getuid?.() ?? 0;
  const agentGid = parseGid(status) ?? process.getgid?.() ?? 0;
  let runAs: RunAs | undefined;
  try {
    runAs = await resolveEnvoyUser(config, { uid: agentUid, gid: agentGid, accounts: await sources.accounts() });
  } catch (err) {
    if (capture || config.envoy.user !== undefined || !isMeshError(err, 'MESH_E_TPROXY_USER')) throw err;
    log.warn('the mesh-envoy user does not exist: Envoy runs as root, with no capabilities; create mesh-envoy or set envoy.user', {
      code: 'MESH_E_TPROXY_USER',
    });
  }
  if (runAs !== undefined && runAs.uid === agentUid && runAs.gid === agentGid) runAs = undefined;
  const setpriv = setprivArgs(runAs, { uid: agentUid, caps: parseCapabilities(status) });
  return { agentUid, ...(runAs === undefined ? {} : { runAs }), ...(setpriv === undefined ? {} : { setpriv }) };
}
