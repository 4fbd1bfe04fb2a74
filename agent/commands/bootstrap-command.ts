/** `mesh-agent bootstrap --print`: the Envoy bootstrap the agent runs Envoy with. */
import { type Command, EXIT_OK } from '../../lib/cli.js';
import { MeshError } from '../../lib/errors.js';
import { loadAgentConfig } from '../config/load.js';
import { agentBootstrap } from '../envoy/agent-envoy.js';
import { systemHostname } from '../run/host-facts.js';

export function bootstrapCommand(hostname: () => Promise<string> = systemHostname): Command {
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
      const config = await loadAgentConfig(values.config, { hostname });
      const bootstrap = agentBootstrap(config, api);
      io.stdout.write(`${JSON.stringify(bootstrap, null, 2)}\n`);
      return EXIT_OK;
    },
  };
}
