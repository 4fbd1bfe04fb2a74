/** The meshctl command table. Commands arrive with the issues that build them. */
import { type Program, versionCommand } from '../../lib/cli.js';
import { packageVersion } from '../../lib/version.js';
import { certInspectCommand } from './cert-inspect.js';
import { meshctlCommands } from './commands.js';
import { policyCommands } from './policy-commands.js';

export function meshctlProgram(): Program {
  return {
    name: 'meshctl',
    summary: "Operates the mesh's control plane on its host through the admin socket: tokens, nodes, CA, policy, audit, backup.",
    version: packageVersion(),
    commands: [...meshctlCommands(), ...policyCommands(), certInspectCommand(), versionCommand('meshctl', packageVersion())],
  };
}
