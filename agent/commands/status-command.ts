/**
 * `mesh-agent status [--json]`: asks the running agent (GET /status on its
 * status listener) and prints a summary, or the whole document as JSON.
 * Exit 0 when healthy, 1 when something needs attention (the problems are
 * listed) or the agent does not answer, 2 for usage errors.
 */

import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { type Command, EXIT_FAILURE, EXIT_OK } from '../../lib/cli.js';
import { isMeshError, MeshError } from '../../lib/errors.js';
import { type HttpAnswer, httpRequest } from '../../lib/http-request.js';
import { invalidConfigWarning, loadAgentConfig } from '../config/load.js';
import { HOST_PORT } from '../config/schema.js';
import { systemHostname } from '../run/host-facts.js';
import { renderStatus } from '../status/render.js';
import type { StatusDocument } from '../status/status.js';

const DEFAULT_CONFIG = '/etc/mesh-agent/agent.yaml';
const DEFAULT_LISTEN = '127.0.0.1:15100';

/**
 * status.listen of the agent's file. A file that fails validation still names
 * the listener of the agent running with its previous configuration (a
 * rejected reload is when status matters most): then status.listen is read
 * from the raw YAML, else the default, with a warning naming the error.
 */
async function statusAddress(file: string, stderr: { write(text: string): unknown }): Promise<string> {
  try {
    return (await loadAgentConfig(file, { hostname: systemHostname })).status.listen;
  } catch (err) {
    if (!isMeshError(err) || err.code !== 'MESH_E_CONFIG_INVALID') throw err;
    // A file that cannot be read (missing, no permission) is the error it was.
    const text = await readFile(file, 'utf8').catch(() => undefined);
    if (text === undefined) throw err;
    let listen: unknown;
    try {
      listen = (parseYaml(text) as { status?: { listen?: unknown } } | null)?.status?.listen;
    } catch {
      listen = undefined;
    }
    const address = typeof listen === 'string' && HOST_PORT.test(listen) ? listen : DEFAULT_LISTEN;
    stderr.write(invalidConfigWarning(err, `asking the status listener at ${address} anyway`));
    return address;
  }
}

/** One GET of the status document: status and body text. */
export type StatusGet = (url: string) => Promise<HttpAnswer>;

/** On node:http (lib/http-request.ts): the agent's program runs with --jitless, where fetch (undici's WebAssembly parser) cannot run. */
const getOverHttp: StatusGet = (url) => httpRequest(url, { timeoutMs: 5_000 });

export function statusCommand(get: StatusGet = getOverHttp): Command {
  return {
    name: 'status',
    summary: 'show what the running agent is doing; exit 1 when something is unhealthy',
    usage:
      '[--config FILE | --address HOST:PORT] [--json]\n\nOptions:\n' +
      `  --config FILE       the agent configuration, for status.listen (default ${DEFAULT_CONFIG})\n` +
      '  --address HOST:PORT the agent status listener (overrides --config)\n' +
      '  --json              print the whole status document as JSON\n',
    options: { config: { type: 'string' }, address: { type: 'string' }, json: { type: 'boolean' } },
    async run({ values, io }) {
      let address = typeof values.address === 'string' ? values.address : undefined;
      if (address !== undefined && !HOST_PORT.test(address))
        throw new MeshError('MESH_E_USAGE', `--address ${address}: must be host:port`, { details: { flag: 'address' } });
      if (address === undefined) {
        const file = typeof values.config === 'string' ? values.config : DEFAULT_CONFIG;
        address = await statusAddress(file, io.stderr);
      }
      let doc: StatusDocument;
      try {
        const res = await get(`http://${address}/status`);
        if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
        doc = JSON.parse(res.body) as StatusDocument;
      } catch (err) {
        throw new MeshError(
          'MESH_E_AGENT_UNREACHABLE',
          `the agent's status listener at ${address} did not answer (${(err as Error).message}); is mesh-agent running? (systemctl status mesh-agent)`,
          { cause: err },
        );
      }
      io.stdout.write(values.json === true ? `${JSON.stringify(doc, null, 2)}\n` : renderStatus(doc));
      return doc.healthy === false ? EXIT_FAILURE : EXIT_OK;
    },
  };
}
