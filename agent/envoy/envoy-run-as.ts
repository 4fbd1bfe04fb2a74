/**
 * Who Envoy runs as, and how it is started so it holds no capabilities.
 *
 * Envoy is spawned through util-linux `setpriv`: `--reuid U --regid G
 * --clear-groups` switch to Envoy's own user, and `--inh-caps=-all
 * --ambient-caps=-all` (plus `--bounding-set=-all` when the agent may drop
 * it) leave CapEff, CapPrm, CapInh and CapAmb all 0 in Envoy, also when the
 * agent itself runs with ambient capabilities (CAP_NET_ADMIN from the unit):
 * Node's spawn({uid, gid}) would switch users but cannot clear the inheritable
 * set, and without a user switch it keeps the ambient set, so Envoy would
 * inherit CAP_NET_ADMIN. When the agent is not root, holds no capability and
 * envoy.user is unset, Envoy is spawned as before (nothing to drop).
 *
 * Pure.
 */
import { MeshError } from '../../lib/errors.js';
import { CAP_SETGID, CAP_SETPCAP, CAP_SETUID, hasCapability, type ProcCapabilities } from '../tproxy/privileges.js';

/** Envoy's user and group (agent/tproxy/facts.ts resolveEnvoyUser). */
export interface RunAs {
  readonly uid: number;
  readonly gid: number;
  readonly name?: string;
}

/**
 * The setpriv arguments before `-- envoy ...`; undefined: spawn Envoy
 * directly. Throws MESH_E_TPROXY_USER when the agent cannot switch to Envoy's user.
 */
export function setprivArgs(runAs: RunAs | undefined, agent: { uid: number; caps: ProcCapabilities }): string[] | undefined {
  const { caps } = agent;
  const holdsAny = agent.uid === 0 || caps.effective !== 0n || caps.permitted !== 0n || caps.ambient !== 0n || caps.inheritable !== 0n;
  if (runAs === undefined && !holdsAny) return undefined;
  const drop = ['--inh-caps=-all', '--ambient-caps=-all', ...(hasCapability(caps.effective, CAP_SETPCAP) ? ['--bounding-set=-all'] : [])];
  if (runAs === undefined || (runAs.uid === agent.uid && agent.uid !== 0)) return drop;
  if (!hasCapability(caps.effective, CAP_SETUID) || !hasCapability(caps.effective, CAP_SETGID))
    throw new MeshError(
      'MESH_E_TPROXY_USER',
      `Envoy should run as ${runAs.name ?? runAs.uid} (uid ${runAs.uid}) but the agent lacks CAP_SETUID and CAP_SETGID to switch to it: ` +
        'run the agent as root, or add CAP_SETUID CAP_SETGID to its unit (AmbientCapabilities), or unset envoy.user',
      { details: { field: 'envoy.user' } },
    );
  return ['--reuid', String(runAs.uid), '--regid', String(runAs.gid), '--clear-groups', ...drop];
}
