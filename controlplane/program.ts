/** The mesh-controlplane command table. Commands arrive with the issues that build them. */
import { type Program, versionCommand } from '../lib/cli.js';
import { packageVersion } from '../lib/version.js';
import { runCommand } from './commands/run-command.js';

export function controlplaneProgram(): Program {
  return {
    name: 'mesh-controlplane',
    summary:
      "The mesh's certificate authority and policy service: join tokens, node identities, " +
      'SPIFFE X.509-SVIDs, trust bundle and CA rotation, backed by SQLite.',
    version: packageVersion(),
    commands: [runCommand(), versionCommand('mesh-controlplane', packageVersion())],
  };
}
