/**
 * `mesh-agent config check [--config FILE]`: loads the configuration file as
 * `mesh-agent run` does (schema, field paths, the joined trust domain) and
 * says whether it is good. The unit runs it before signalling a reload, so
 * `systemctl reload` with a bad file fails with the file and field path and
 * the running agent is not even asked to reload.
 */
import { type Command, EXIT_OK } from '../../lib/cli.js';
import { loadAgentConfig } from '../config/load.js';
import { systemHostname } from '../run/host-facts.js';

const DEFAULT_CONFIG = '/etc/mesh-agent/agent.yaml';

export function configCheckCommand(hostname: () => Promise<string> = systemHostname): Command {
  return {
    name: 'config check',
    summary: 'check the agent configuration file as run would load it; exit 1 with the file and field path when it is bad',
    usage: `[--config FILE]\n\nOptions:\n  --config FILE   the agent configuration (default ${DEFAULT_CONFIG})\n`,
    options: { config: { type: 'string' } },
    async run({ values, io }) {
      const file = typeof values.config === 'string' ? values.config : DEFAULT_CONFIG;
      const config = await loadAgentConfig(file, { hostname, requireTrustDomain: true });
      io.stdout.write(`${file}: ok (node ${config.nodeName}, trust domain ${config.trustDomain || 'unknown'})\n`);
      return EXIT_OK;
    },
  };
}
