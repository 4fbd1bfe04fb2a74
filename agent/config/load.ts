/**
 * Loads the agent configuration once: file -> schema -> resolved, frozen
 * AgentConfig. The node name defaults to the hostname and the Consul token may
 * come from a file; both are resolved here so nothing reads them later.
 */
import { readFile } from 'node:fs/promises';
import { loadConfigFile } from '../../lib/config-file.js';
import { deepFreeze } from '../../lib/deep-freeze.js';
import { MeshError } from '../../lib/errors.js';
import { identityDir, joinedTrustDomain } from '../identity/identity-store.js';
import { type AgentConfig, agentConfigSchema } from './schema.js';

export interface LoadAgentConfigDeps {
  /** The host name nodeName defaults to (os.hostname() in production, as systeminformation reports it). */
  hostname(): Promise<string>;
  /**
   * The trust domain this host joined, as its node SVID names it; undefined
   * when it has not joined. Default: read from <dataDir>/identity.
   */
  joinedTrustDomain?(dataDir: string): Promise<string | undefined>;
  /** `run` needs the trust domain: an unknown one (not joined, not set) is an error. */
  requireTrustDomain?: boolean;
}

/**
 * The trust domain comes from the join: the node SVID names it. A configured
 * trustDomain must equal it (MESH_E_TRUST_DOMAIN_MISMATCH); on a host that has
 * not joined the configured one is used (data plane off), and with neither the
 * caller decides whether that is an error.
 */
async function resolveTrustDomain(file: string, configured: string | undefined, dataDir: string, deps: LoadAgentConfigDeps) {
  const joined = await (deps.joinedTrustDomain ?? joinedTrustDomain)(dataDir);
  if (joined !== undefined && configured !== undefined && joined !== configured) {
    throw new MeshError(
      'MESH_E_TRUST_DOMAIN_MISMATCH',
      `${file}: trustDomain is ${configured}, but this host joined the trust domain ${joined} (${identityDir(dataDir)}): ` +
        `remove trustDomain from the file, set it to ${joined}, or join the other mesh again`,
      { details: { file, configured, joined, issues: [{ path: 'trustDomain', message: `differs from the joined ${joined}` }] } },
    );
  }
  const trustDomain = joined ?? configured;
  if (trustDomain === undefined && deps.requireTrustDomain === true) {
    throw new MeshError(
      'MESH_E_NOT_JOINED',
      `${file}: the trust domain is unknown: this host has not joined (no node identity in ${identityDir(dataDir)}); ` +
        'run mesh-agent join first (or, with dataPlane.enabled false, set trustDomain)',
      { details: { file, dir: identityDir(dataDir) } },
    );
  }
  return trustDomain ?? '';
}

/** Kubernetes mode has no join to learn the control plane and the trust domain from: the file names them. */
function requireKubernetesFields(file: string, trustDomain: string | undefined, address: string | undefined): void {
  const missing = [...(trustDomain === undefined ? ['trustDomain'] : []), ...(address === undefined ? ['controlPlane.address'] : [])];
  if (missing.length === 0) return;
  throw new MeshError(
    'MESH_E_CONFIG_INVALID',
    `${file}: kubernetes mode needs ${missing.join(' and ')} (there is no join to learn them from)`,
    {
      details: { file, issues: missing.map((path) => ({ path, message: 'required with kubernetes' })) },
    },
  );
}

export async function loadAgentConfig(file: string, deps: LoadAgentConfigDeps): Promise<AgentConfig> {
  const parsed = await loadConfigFile(agentConfigSchema(), file);
  const { tokenFile, ...consul } = parsed.consul;
  let token = consul.token;
  if (tokenFile !== undefined) {
    try {
      token = (await readFile(tokenFile, 'utf8')).trim();
    } catch (err) {
      throw new MeshError('MESH_E_CONFIG_INVALID', `${file}: consul.tokenFile: cannot read ${tokenFile}: ${(err as Error).message}`, {
        details: { file, issues: [{ path: 'consul.tokenFile', message: 'unreadable' }] },
        cause: err,
      });
    }
  }
  const nodeName = parsed.nodeName ?? (await deps.hostname());
  if (nodeName === '') {
    throw new MeshError('MESH_E_CONFIG_INVALID', `${file}: nodeName: the hostname is empty; set nodeName`, {
      details: { file, issues: [{ path: 'nodeName', message: 'empty' }] },
    });
  }
  if (parsed.kubernetes !== undefined) requireKubernetesFields(file, parsed.trustDomain, parsed.controlPlane.address);
  const trustDomain = await resolveTrustDomain(file, parsed.trustDomain, parsed.dataDir, deps);
  return deepFreeze({ ...parsed, nodeName, trustDomain, consul: { ...consul, token } });
}

/** Two warning lines for a command that goes on without a valid agent file: the error on one line, then what it does instead. */
export function invalidConfigWarning(err: { code: string; message: string }, instead: string): string {
  return `warning: ${err.code}: ${err.message.replace(/\s*\n\s*/g, ' ')}\nwarning: ${instead}\n`;
}
