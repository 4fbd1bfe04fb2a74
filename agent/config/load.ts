/**
 * Loads the agent configuration once: file -> schema -> resolved, frozen
 * AgentConfig. The node name defaults to the hostname and the Consul token may
 * come from a file; both are resolved here so nothing reads them later.
 */
import { readFile } from 'node:fs/promises';
import { loadConfigFile } from '../../lib/config-file.js';
import { deepFreeze } from '../../lib/deep-freeze.js';
import { MeshError } from '../../lib/errors.js';
import { type AgentConfig, agentConfigSchema } from './schema.js';

export interface LoadAgentConfigDeps {
  /** The host name nodeName defaults to (os.hostname() in production, as systeminformation reports it). */
  hostname(): Promise<string>;
}

export async function loadAgentConfig(file: string, deps: LoadAgentConfigDeps): Promise<AgentConfig> {
  const parsed = await loadConfigFile(agentConfigSchema, file);
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
  return deepFreeze({ ...parsed, nodeName, consul: { ...consul, token } });
}
