/** mesh-agent join | renew | svid fetch: the identity side of the agent on the command line. */
import { readFile } from 'node:fs/promises';
import { type CliIo, type Command, EXIT_OK } from '../../lib/cli.js';
import { MeshError } from '../../lib/errors.js';
import { connectControlPlane } from '../identity/cp-client.js';
import {
  type ClientFactory,
  fetchWorkloadSvid,
  type JoinStep,
  joinMesh,
  refuseIfJoined,
  renewNodeSvid,
  type SvidSummary,
} from '../identity/enroll.js';
import { giveIdentityTo, resolveJoinOwner } from '../identity/join-owner.js';
import { type Accounts, readAccounts } from '../tproxy/accounts.js';

/** Where join keeps the identity unless --data-dir says otherwise: the agent config's dataDir default (the package's StateDirectory). */
export const DEFAULT_DATA_DIR = '/var/lib/mesh-agent';

const dataDirOf = (values: Record<string, unknown>) => optional(values, 'data-dir') ?? DEFAULT_DATA_DIR;

function required(values: Record<string, unknown>, flag: string, command: string): string {
  const value = values[flag];
  if (typeof value !== 'string' || value === '')
    throw new MeshError('MESH_E_USAGE', `mesh-agent ${command}: --${flag} is required`, { details: { flag } });
  return value;
}

const optional = (values: Record<string, unknown>, flag: string) =>
  typeof values[flag] === 'string' ? (values[flag] as string) : undefined;

function report(io: CliIo, json: boolean, what: string, s: SvidSummary, extra: Record<string, unknown> = {}): number {
  if (json) io.stdout.write(`${JSON.stringify({ ...s, notAfter: new Date(s.notAfter).toISOString(), ...extra })}\n`);
  else io.stdout.write(`${what}: ${s.spiffeId}\n  serial   ${s.serial}\n  expires  ${new Date(s.notAfter).toISOString()}\n`);
  return EXIT_OK;
}

async function readText(file: string, flag: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new MeshError('MESH_E_USAGE', `--${flag} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, {
      details: { flag, file },
    });
  }
}

/** One line of join progress, numbered; on stderr so that --json output on stdout stays clean. */
export function joinProgressLine(s: JoinStep): string {
  switch (s.step) {
    case 'key':
      return 'join [1/4] node key made here (ECDSA P-256; it never leaves this host)';
    case 'csr-sent':
      return `join [2/4] certificate request sent to ${s.address}`;
    case 'svid':
      return `join [3/4] node SVID received: ${s.spiffeId}, valid until ${new Date(s.notAfter).toISOString()}`;
    case 'written':
      return `join [4/4] key, SVID and trust bundle written to ${s.dir}`;
  }
}

/** What join needs from the host: its effective uid and the account databases (tests pass their own). */
export interface JoinHost {
  euid(): number;
  accounts(): Promise<Accounts>;
}

const realHost: JoinHost = { euid: () => process.geteuid?.() ?? 0, accounts: () => readAccounts() };

export function identityCommands(connect: ClientFactory = connectControlPlane, host: JoinHost = realHost): Command[] {
  return [
    {
      name: 'join',
      summary: 'join the mesh with a single-use token: make the node key here, get the node SVID',
      usage: `--controlplane HOST:PORT (--token TOKEN | --token-file FILE) --ca-bundle FILE [--data-dir DIR] [--owner USER] [--force] [--trust-domain TD] [--json]

Options:
  --controlplane HOST:PORT   the control plane's Identity API
  --token TOKEN              the join token from meshctl token create (prefer --token-file: argv is visible to other users)
  --token-file FILE          read the token from FILE
  --ca-bundle FILE           PEM roots that the control plane's certificate must chain to (no trust on first use)
  --data-dir DIR             where the node key (0600), node SVID and bundle are kept (DIR/identity);
                             default /var/lib/mesh-agent, the agent's default dataDir
  --trust-domain TD          only when the bundle's roots carry no spiffe:// URI
  --owner USER               who owns the written identity (default, as root: the data folder's owner, else mesh-agent if it exists)
  --force                    replace the identity of a host that already joined (default: refuse, leaving it untouched)
  --json                     print the result as JSON
`,
      options: {
        controlplane: { type: 'string' },
        token: { type: 'string' },
        'token-file': { type: 'string' },
        'ca-bundle': { type: 'string' },
        'data-dir': { type: 'string' },
        'trust-domain': { type: 'string' },
        owner: { type: 'string' },
        force: { type: 'boolean' },
        json: { type: 'boolean' },
      },
      async run({ values, io }) {
        const address = required(values, 'controlplane', 'join');
        const force = values.force === true;
        const tokenFile = optional(values, 'token-file');
        const token = tokenFile ? (await readText(tokenFile, 'token-file')).trim() : optional(values, 'token');
        if (!token)
          throw new MeshError('MESH_E_USAGE', 'mesh-agent join: --token or --token-file is required', { details: { flag: 'token' } });
        const bundlePem = await readText(required(values, 'ca-bundle', 'join'), 'ca-bundle');
        const dataDir = dataDirOf(values);
        const trustDomain = optional(values, 'trust-domain');
        // Before the token is spent: a joined host is refused (unless --force), an unknown --owner is a usage error.
        if (!force) await refuseIfJoined(dataDir);
        const ownerFlag = optional(values, 'owner');
        const owner = await resolveJoinOwner({
          dataDir,
          euid: host.euid(),
          accounts: host.accounts,
          ...(ownerFlag ? { flag: ownerFlag } : {}),
        });
        const result = await joinMesh(
          { address, token, bundlePem, dataDir, force, ...(trustDomain ? { trustDomain } : {}) },
          connect,
          (step) => io.stderr.write(`${joinProgressLine(step)}\n`),
        );
        if (owner !== undefined) await giveIdentityTo(dataDir, owner);
        const next = 'next: systemctl enable --now mesh-agent';
        if (values.json === true) return report(io, true, 'joined as', result, { ...(owner ? { owner: owner.name } : {}), next });
        report(io, false, 'joined as', result);
        io.stdout.write(`${owner ? `  owner    ${owner.name} (uid ${owner.uid})\n` : ''}${next}\n`);
        return EXIT_OK;
      },
    },
    {
      name: 'renew',
      summary: 'renew the node SVID with the current one (new node key; no token needed)',
      usage:
        '[--data-dir DIR] [--controlplane HOST:PORT] [--json]\n\nOptions:\n  --data-dir DIR             the agent data folder used at join (default /var/lib/mesh-agent)\n  --controlplane HOST:PORT   default: the address used at join\n  --json                     print the result as JSON\n',
      options: { 'data-dir': { type: 'string' }, controlplane: { type: 'string' }, json: { type: 'boolean' } },
      async run({ values, io }) {
        const address = optional(values, 'controlplane');
        const result = await renewNodeSvid({ dataDir: dataDirOf(values), ...(address ? { address } : {}) }, connect);
        return report(io, values.json === true, 'renewed', result);
      },
    },
    {
      name: 'svid fetch',
      summary: 'get a workload SVID: new key here, signed by the control plane; writes svid.pem, svid.key, bundle.pem',
      usage:
        '--spiffe-id ID --write OUT [--data-dir DIR] [--controlplane HOST:PORT] [--json]\n\nOptions:\n  --data-dir DIR             the agent data folder used at join (default /var/lib/mesh-agent)\n  --spiffe-id ID             the workload SPIFFE ID, one the node is allowed\n  --write OUT                folder for svid.pem (leaf, then intermediates), svid.key (0600), bundle.pem\n  --controlplane HOST:PORT   default: the address used at join\n  --json                     print the result as JSON\n',
      options: {
        'data-dir': { type: 'string' },
        controlplane: { type: 'string' },
        'spiffe-id': { type: 'string' },
        write: { type: 'string' },
        json: { type: 'boolean' },
      },
      async run({ values, io }) {
        const address = optional(values, 'controlplane');
        const result = await fetchWorkloadSvid(
          {
            dataDir: dataDirOf(values),
            spiffeId: required(values, 'spiffe-id', 'svid fetch'),
            outDir: required(values, 'write', 'svid fetch'),
            ...(address ? { address } : {}),
          },
          connect,
        );
        return report(io, values.json === true, 'fetched', result, { files: result.files });
      },
    },
  ];
}
