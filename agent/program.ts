/** The mesh-agent command table. Commands arrive with the issues that build them. */
import { type Program, versionCommand } from '../lib/cli.js';
import { packageVersion } from '../lib/version.js';
import { bootstrapCommand } from './commands/bootstrap-command.js';
import { configCheckCommand } from './commands/config-command.js';
import { doctorCommand } from './commands/doctor-command.js';
import { identityCommands } from './commands/identity-commands.js';
import { statusCommand } from './commands/status-command.js';
import { tproxyCommands } from './commands/tproxy-commands.js';
import { runCommand } from './run/run-command.js';

export function agentProgram(): Program {
  return {
    name: 'mesh-agent',
    summary:
      'The mesh agent for a VM or bare-metal host: joins the mesh, registers workloads in Consul, ' +
      'obtains SPIFFE certificates and runs the local Envoy.',
    version: packageVersion(),
    commands: [
      ...identityCommands(),
      runCommand(),
      statusCommand(),
      doctorCommand(),
      ...tproxyCommands(),
      bootstrapCommand(),
      configCheckCommand(),
      versionCommand('mesh-agent', packageVersion()),
    ],
  };
}
