/** `mesh-agent bootstrap --print`: the Envoy bootstrap the agent runs Envoy with. */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { type Command, EXIT_OK } from '../../lib/cli.js';
import { MeshError } from '../../lib/errors.js';
import { loadAgentConfig } from '../config/load.js';
import type { AgentConfig } from '../config/schema.js';
import { buildBootstrap } from '../envoy/bootstrap.js';
import { hostFacts } from '../run/host-facts.js';

/** Where the agent serves ADS to Envoy: <dataDir>/envoy/ads.sock. */
export function adsSocketPath(dataDir: string): string {
  return path.join(dataDir, 'envoy', 'ads.sock');
}

/** The bootstrap of this agent's Envoy: node name, admin port, ADS socket and API from the config. */
export function agentBootstrap(config: AgentConfig, api: 'sotw' | 'delta' = config.envoy.api): Record<string, unknown> {
  return buildBootstrap({
    nodeName: config.nodeName,
    adminPort: config.envoy.adminPort,
    adsSocket: adsSocketPath(config.dataDir),
    api,
    accessLog: config.envoy.accessLog,
  });
}

/** Envoy's hot-restart base id: envoy.baseId, else derived from dataDir so two agents on one host never share one. */
export function envoyBaseId(config: AgentConfig): number {
  return config.envoy.baseId ?? 1 + (createHash('sha256').update(config.dataDir).digest().readUInt32BE(0) % 4_000_000);
}

export function bootstrapCommand(facts: typeof hostFacts = hostFacts): Command {
  return {
    name: 'bootstrap',
    summary: 'print the Envoy bootstrap the agent starts Envoy with (JSON)',
    usage:
      '--print --config FILE [--api sotw|delta]\n\nOptions:\n  --print         print the bootstrap on stdout\n  --config FILE   the agent configuration (nodeName, dataDir, envoy.adminPort, envoy.api)\n  --api MODE      sotw (state of the world) or delta (incremental xDS); default: envoy.api of the config\n',
    options: { print: { type: 'boolean' }, config: { type: 'string' }, api: { type: 'string' } },
    async run({ values, io }) {
      if (values.print !== true)
        throw new MeshError(
          'MESH_E_USAGE',
          'mesh-agent bootstrap: --print is required (the agent itself starts Envoy with this bootstrap)',
        );
      if (typeof values.config !== 'string')
        throw new MeshError('MESH_E_USAGE', 'mesh-agent bootstrap: --config FILE is required', { details: { flag: 'config' } });
      const api = values.api;
      if (api !== undefined && api !== 'sotw' && api !== 'delta')
        throw new MeshError('MESH_E_USAGE', `--api ${String(api)}: use sotw or delta`, { details: { flag: 'api' } });
      const config = await loadAgentConfig(values.config, { hostname: async () => (await facts()).hostname });
      const bootstrap = agentBootstrap(config, api);
      io.stdout.write(`${JSON.stringify(bootstrap, null, 2)}\n`);
      return EXIT_OK;
    },
  };
}
