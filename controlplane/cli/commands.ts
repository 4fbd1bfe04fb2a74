/** The meshctl commands: thin calls to the Admin API, human tables or --json. */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { type CliIo, type Command, EXIT_OK, type OptionSpec } from '../../lib/cli.js';
import { parseDuration } from '../../lib/duration.js';
import { MeshError } from '../../lib/errors.js';
import { toPem } from '../../lib/x509/pem.js';
import { type AdminClient, connectAdmin } from './admin-client.js';
import { iso, table } from './cli-format.js';
import { exportIntermediateSpec } from './export-commands.js';
import { nodeListSpec, nodeStatusSpec } from './node-commands.js';

export const DEFAULT_DATA_DIR = '/var/lib/mesh-controlplane';
const DATA_DIR_HELP = `  --data-dir DIR   the control plane's data folder (default ${DEFAULT_DATA_DIR}); meshctl talks to DIR/admin.sock\n`;

export type Connect = (dataDir: string) => AdminClient;

export interface Spec {
  name: string;
  summary: string;
  usage: string;
  options?: OptionSpec;
  positionals?: boolean;
  run(client: AdminClient, values: Record<string, unknown>, positionals: string[], io: CliIo): Promise<number>;
}

export function command(spec: Spec, connect: Connect): Command {
  return {
    name: spec.name,
    summary: spec.summary,
    usage: `${spec.usage.split('\n')[0]}\n\nOptions:\n${spec.usage.split('\n').slice(1).join('\n')}${DATA_DIR_HELP}`,
    options: { 'data-dir': { type: 'string' }, ...(spec.options ?? {}) },
    allowPositionals: spec.positionals ?? false,
    async run({ values, positionals, io }) {
      const client = connect(typeof values['data-dir'] === 'string' ? values['data-dir'] : DEFAULT_DATA_DIR);
      try {
        return await spec.run(client, values, positionals, io);
      } finally {
        client.close();
      }
    },
  };
}

const json = { json: { type: 'boolean' } } as const;

export { iso, table };

async function readFlagFile(values: Record<string, unknown>, flag: string, required: boolean): Promise<string> {
  const file = values[flag];
  if (typeof file !== 'string') {
    if (required) throw new MeshError('MESH_E_USAGE', `--${flag} FILE is required`, { details: { flag } });
    return '';
  }
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new MeshError('MESH_E_USAGE', `--${flag} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, {
      details: { flag, file },
    });
  }
}

interface CaStatus {
  generations: Array<{ id: number; state: string; source: string; root_subject: string; root_not_after: string; root_fingerprint: string }>;
  bundle_sequence: number;
  message: string;
  exports?: Array<{ id: number; kind: string; root_generation: number; serial: string; subject: string; not_after_ms: number }>;
}

function printCa(io: CliIo, values: Record<string, unknown>, status: CaStatus): number {
  if (values.json) {
    io.stdout.write(`${JSON.stringify(status)}\n`);
    return EXIT_OK;
  }
  if (status.message) io.stdout.write(`${status.message}\n`);
  io.stdout.write(
    table([
      ['GENERATION', 'STATE', 'SOURCE', 'ROOT', 'ROOT EXPIRES', 'ROOT SHA-256'],
      ...status.generations.map((g) => [
        String(g.id),
        g.state,
        g.source,
        g.root_subject,
        g.root_not_after,
        `${g.root_fingerprint.slice(0, 16)}…`,
      ]),
    ]),
  );
  io.stdout.write(`bundle sequence ${status.bundle_sequence}\n`);
  const exports = status.exports ?? [];
  if (exports.length > 0) {
    io.stdout.write(
      `\n${table([
        ['EXPORT', 'KIND', 'UNDER GENERATION', 'SERIAL', 'EXPIRES', 'SUBJECT'],
        ...exports.map((x) => [
          String(x.id),
          `exported-intermediate (${x.kind})`,
          String(x.root_generation),
          x.serial,
          iso(x.not_after_ms),
          x.subject,
        ]),
      ])}`,
    );
  }
  return EXIT_OK;
}

export function meshctlCommands(connect: Connect = connectAdmin): Command[] {
  const rotate = (step: 'prepare' | 'activate' | 'retire', summary: string): Spec => ({
    name: `ca rotate ${step}`,
    summary,
    usage:
      step === 'retire'
        ? '[--force] [--json]\n  --force   retire even though unexpired certificates chain to the old root\n  --json    print JSON\n'
        : '[--json]\n  --json   print JSON\n',
    options: step === 'retire' ? { force: { type: 'boolean' }, ...json } : json,
    run: async (client, values, _p, io) =>
      printCa(io, values, await client.call<CaStatus>('RotateCa', { step, force: values.force === true })),
  });
  const specs: Spec[] = [
    {
      name: 'token create',
      summary: 'create a single-use join token for a node (prints only the token)',
      usage:
        '--node NAME [--allow SPIFFE_ID_PATTERN ...] [--ttl 10m] [--json]\n  --node NAME     the node name; it joins as spiffe://<td>/mesh/node/NAME\n  --allow PATTERN a workload SPIFFE ID the node may hold; "*" matches one path segment (repeatable)\n  --ttl DURATION  how long the token is valid (default 10m)\n  --json          print {"token","expiresAt","nodeSpiffeId"}\n',
      options: { node: { type: 'string' }, allow: { type: 'string', multiple: true }, ttl: { type: 'string' }, ...json },
      async run(client, values, _p, io) {
        if (typeof values.node !== 'string')
          throw new MeshError('MESH_E_USAGE', 'token create: --node NAME is required', { details: { flag: 'node' } });
        const ttlMs = parseDuration(typeof values.ttl === 'string' ? values.ttl : '10m');
        if (ttlMs === undefined)
          throw new MeshError('MESH_E_USAGE', `--ttl ${String(values.ttl)} is not a duration such as 10m or 1h`, {
            details: { flag: 'ttl' },
          });
        const r = await client.call<{ token: string; expires_at_ms: number; node_spiffe_id: string }>('CreateToken', {
          node_name: values.node,
          allow: (values.allow as string[] | undefined) ?? [],
          ttl_ms: ttlMs,
        });
        io.stdout.write(
          values.json
            ? `${JSON.stringify({ token: r.token, expiresAt: iso(r.expires_at_ms), nodeSpiffeId: r.node_spiffe_id })}\n`
            : `${r.token}\n`,
        );
        return EXIT_OK;
      },
    },
    {
      name: 'ca bundle',
      summary: 'print the trust bundle (PEM roots) on stdout',
      usage: '\n',
      async run(client, _v, _p, io) {
        const b = await client.call<{ roots: Buffer[] }>('GetBundle');
        io.stdout.write(b.roots.map((der) => toPem(der)).join(''));
        return EXIT_OK;
      },
    },
    {
      name: 'ca status',
      summary: 'list the CA generations and the bundle sequence',
      usage: '[--json]\n  --json   print JSON\n',
      options: json,
      run: async (client, values, _p, io) => printCa(io, values, await client.call<CaStatus>('GetCaStatus')),
    },
    {
      name: 'ca import',
      summary: 'import an operator CA (root, or intermediate with --chain) as the prepared generation',
      usage:
        '--cert FILE --key FILE [--chain FILE] [--json]\n  --cert FILE    PEM CA certificate (CA:true)\n  --key FILE     its PEM private key (copied to DIR/ca, mode 0600)\n  --chain FILE   for an intermediate: its issuers up to and including the root\n  --json         print JSON\n',
      options: { cert: { type: 'string' }, key: { type: 'string' }, chain: { type: 'string' }, ...json },
      async run(client, values, _p, io) {
        const request = {
          cert_pem: await readFlagFile(values, 'cert', true),
          key_pem: await readFlagFile(values, 'key', true),
          chain_pem: await readFlagFile(values, 'chain', false),
        };
        return printCa(io, values, await client.call<CaStatus>('ImportCa', request));
      },
    },
    exportIntermediateSpec(),
    rotate('prepare', 'rotation step 1: create a new root and add it to the bundle (agents receive it)'),
    rotate('activate', 'rotation step 2: the new root signs; the old root stays in the bundle'),
    rotate('retire', 'rotation step 3: remove the old root once no unexpired certificate chains to it'),
    nodeListSpec(),
    nodeStatusSpec(),
    {
      name: 'node revoke',
      summary: 'revoke a node: it can no longer renew or get SVIDs',
      usage: 'NAME\n',
      positionals: true,
      async run(client, _v, positionals, io) {
        const [name] = positionals;
        if (name === undefined || positionals.length !== 1) throw new MeshError('MESH_E_USAGE', 'node revoke: give exactly one node NAME');
        const node = await client.call<{ name: string; status: string }>('RevokeNode', { name });
        io.stdout.write(`node ${node.name}: ${node.status}\n`);
        return EXIT_OK;
      },
    },
    {
      name: 'audit',
      summary: 'show the audit log (joins, issuances, renewals, revocations, rotation steps)',
      usage: '[--limit N] [--json]\n  --limit N   the newest N entries (default 100)\n  --json      print JSON lines\n',
      options: { limit: { type: 'string' }, ...json },
      async run(client, values, _p, io) {
        const limit = Number(values.limit ?? 100);
        if (!Number.isInteger(limit) || limit <= 0)
          throw new MeshError('MESH_E_USAGE', `--limit ${String(values.limit)} must be a positive whole number`, {
            details: { flag: 'limit' },
          });
        const { entries } = await client.call<{ entries: Array<Record<string, string | number>> }>('ListAudit', { limit });
        if (values.json) {
          for (const e of entries) io.stdout.write(`${JSON.stringify({ ...e, at: iso(e.at_ms as number) })}\n`);
        } else {
          io.stdout.write(
            table([
              ['TIME', 'ACTOR', 'ACTION', 'RESULT', 'SPIFFE ID', 'SERIAL'],
              ...entries.map((e) => [
                iso(e.at_ms as number),
                String(e.actor),
                String(e.action),
                String(e.result),
                String(e.spiffe_id || '-'),
                String(e.serial || '-'),
              ]),
            ]),
          );
        }
        return EXIT_OK;
      },
    },
    {
      name: 'backup',
      summary: "online backup of the control plane's database (SQLite backup API); CA keys are not included",
      usage: '--out FILE [--json]\n  --out FILE   a new file on the control-plane host\n  --json       print JSON\n',
      options: { out: { type: 'string' }, ...json },
      async run(client, values, _p, io) {
        if (typeof values.out !== 'string')
          throw new MeshError('MESH_E_USAGE', 'backup: --out FILE is required', { details: { flag: 'out' } });
        const r = await client.call<{ out: string; bytes: number; pages: number }>('Backup', { out: path.resolve(values.out) });
        io.stdout.write(values.json ? `${JSON.stringify(r)}\n` : `backup written to ${r.out} (${r.bytes} bytes)\n`);
        return EXIT_OK;
      },
    },
    {
      name: 'status',
      summary: 'control plane status: trust domain, listen address, nodes, certificates, CA',
      usage: '[--json]\n  --json   print JSON\n',
      options: json,
      async run(client, values, _p, io) {
        const s = await client.call<Record<string, string | number>>('Status');
        if (values.json) io.stdout.write(`${JSON.stringify(s)}\n`);
        else
          io.stdout.write(
            table([
              ['trust domain', String(s.trust_domain)],
              ['listen', String(s.listen)],
              ['version', String(s.version)],
              ['nodes', `${s.nodes_active} active, ${s.nodes_revoked} revoked`],
              ['certificates issued', String(s.certificates)],
              ['CA generation', `${s.active_generation} (bundle sequence ${s.bundle_sequence})`],
              ['schema version', String(s.schema_version)],
              ['started', iso(s.started_at_ms as number)],
            ]),
          );
        return EXIT_OK;
      },
    },
  ];
  return specs.map((s) => command(s, connect));
}
