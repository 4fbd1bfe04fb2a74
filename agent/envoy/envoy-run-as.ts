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
 * Pure: the passwd and group files come in as text.
 */
import { MeshError } from '../../lib/errors.js';
import { CAP_SETGID, CAP_SETPCAP, CAP_SETUID, hasCapability, type ProcCapabilities } from '../tproxy/privileges.js';

export interface RunAs {
  readonly uid: number;
  readonly gid: number;
  /** What the config said (or the default), for messages. */
  readonly user: string;
}

/** The user Envoy runs as when the agent runs as root and envoy.user is unset. */
export const DEFAULT_ENVOY_USER = 'mesh-envoy';

interface PasswdEntry {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
}

function parseColonFile(text: string): PasswdEntry[] {
  return text
    .split('\n')
    .map((l) => l.split(':'))
    .filter((f) => f.length >= 4 && f[0] !== '' && !(f[0] ?? '').startsWith('#'))
    .map((f) => ({ name: f[0] as string, uid: Number(f[2]), gid: Number(f[3]) }));
}

export interface RunAsInput {
  readonly user: string | undefined;
  readonly group: string | undefined;
  readonly agentUid: number;
  /** /etc/passwd and /etc/group. */
  readonly passwd: string;
  readonly groups: string;
  /** transparentProxy.enabled: capture exempts Envoy by owner, so it must have its own user. */
  readonly capture: boolean;
}

const numeric = (s: string) => /^\d+$/.test(s);

/**
 * Envoy's uid and gid; undefined: Envoy runs as the agent's user (not root
 * and no envoy.user; or root, no envoy.user, no mesh-envoy user and no capture).
 */
export function resolveRunAs(input: RunAsInput): RunAs | undefined {
  const users = parseColonFile(input.passwd);
  let user = input.user;
  if (user === undefined) {
    if (input.agentUid !== 0) return undefined;
    if (!users.some((u) => u.name === DEFAULT_ENVOY_USER)) {
      if (!input.capture) return undefined;
      throw new MeshError(
        'MESH_E_TPROXY_USER',
        `transparentProxy.enabled needs Envoy to run as its own user, and the default user ${DEFAULT_ENVOY_USER} does not exist: ` +
          `create it (useradd --system --no-create-home --shell /usr/sbin/nologin ${DEFAULT_ENVOY_USER}) or set envoy.user`,
        { details: { field: 'envoy.user' } },
      );
    }
    user = DEFAULT_ENVOY_USER;
  }
  const entry = users.find((u) => (numeric(user) ? u.uid === Number(user) : u.name === user));
  if (entry === undefined && !numeric(user))
    throw new MeshError('MESH_E_TPROXY_USER', `envoy.user: no user named ${user}; create it or give a numeric uid`, {
      details: { field: 'envoy.user', user },
    });
  const uid = entry?.uid ?? Number(user);
  let gid = entry?.gid ?? uid;
  if (input.group !== undefined) {
    const group = input.group;
    const g = parseColonFile(input.groups).find((e) => (numeric(group) ? e.uid === Number(group) : e.name === group));
    if (g === undefined && !numeric(group))
      throw new MeshError('MESH_E_TPROXY_USER', `envoy.group: no group named ${group}; create it or give a numeric gid`, {
        details: { field: 'envoy.group', group },
      });
    gid = g?.uid ?? Number(group);
  }
  if (uid === 0 && input.capture)
    throw new MeshError(
      'MESH_E_TPROXY_USER',
      'envoy.user must not be root (uid 0) with transparentProxy.enabled: capture exempts Envoy by owner',
      {
        details: { field: 'envoy.user' },
      },
    );
  return { uid, gid, user };
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
      `Envoy should run as ${runAs.user} (uid ${runAs.uid}) but the agent lacks CAP_SETUID and CAP_SETGID to switch to it: ` +
        'run the agent as root, or add CAP_SETUID CAP_SETGID to its unit (AmbientCapabilities), or unset envoy.user',
      { details: { field: 'envoy.user' } },
    );
  return ['--reuid', String(runAs.uid), '--regid', String(runAs.gid), '--clear-groups', ...drop];
}
