/**
 * `meshctl policy apply|get|list|delete|diff`: policy resources through the
 * Admin API. Apply is all-or-nothing on the control plane; diff is a dry run
 * of the same apply, shown field by field.
 */
import { readFile } from 'node:fs/promises';
import { stringify } from 'yaml';
import type { CliIo, Command } from '../../lib/cli.js';
import { EXIT_OK } from '../../lib/cli.js';
import { MeshError } from '../../lib/errors.js';
import { POLICY_KINDS, type PolicyKind } from '../../lib/policy/schema.js';
import type { PolicyResourceWire } from '../../lib/policy/wire.js';
import { connectAdmin } from './admin-client.js';
import { type Connect, command, iso, type Spec, table } from './commands.js';
import { diffValues, type FieldChange, formatFieldChange } from './policy-diff.js';
import { parsePolicyText } from './policy-input.js';

type PolicyResource = PolicyResourceWire;

interface ApplyResponse {
  revision: number;
  changes: Array<{ kind: string; name: string; action: string; before_json: string; after_json: string }>;
}

/** All of stdin, as text (works with a pipe or a file; no TTY needed). */
export async function readProcessStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
  return Buffer.concat(chunks).toString('utf8');
}

/** A kind as the user typed it (any case) -> the kind's name. */
export function policyKindArg(text: string | undefined, flag = 'KIND'): PolicyKind {
  const kind = POLICY_KINDS.find((k) => k.toLowerCase() === text?.toLowerCase());
  if (kind === undefined)
    throw new MeshError(
      'MESH_E_USAGE',
      `${flag} ${JSON.stringify(text ?? '')} is not a policy kind; the kinds are ${POLICY_KINDS.join(', ')}`,
      {
        details: { kind: text ?? '' },
      },
    );
  return kind;
}

const FILE_HELP = '  -f, --file FILE  multi-document YAML (--- between documents) or JSON (one object or an array); "-" reads stdin\n';
const fileOption = { file: { type: 'string', short: 'f' } } as const;
const jsonOption = { json: { type: 'boolean' } } as const;

async function readDocuments(values: Record<string, unknown>, stdin: () => Promise<string>): Promise<string[]> {
  const file = values.file;
  if (typeof file !== 'string')
    throw new MeshError('MESH_E_USAGE', '-f FILE (or -f - for stdin) is required', { details: { flag: 'file' } });
  let text: string;
  try {
    text = file === '-' ? await stdin() : await readFile(file, 'utf8');
  } catch (err) {
    throw new MeshError('MESH_E_USAGE', `-f ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, {
      details: { flag: 'file', file },
    });
  }
  return parsePolicyText(text, file === '-' ? 'stdin' : file).map((d) => JSON.stringify(d));
}

const parseJson = (text: string): unknown => (text === '' ? undefined : JSON.parse(text));

function fieldChanges(change: ApplyResponse['changes'][number]): FieldChange[] {
  return change.action === 'updated' ? diffValues(parseJson(change.before_json), parseJson(change.after_json)) : [];
}

function counts(changes: ApplyResponse['changes']): string {
  const n = (action: string) => changes.filter((c) => c.action === action).length;
  return `${n('created')} created, ${n('updated')} updated, ${n('unchanged')} unchanged`;
}

function oneName(positionals: string[], what: string): { kind: PolicyKind; name: string } {
  if (positionals.length !== 2) throw new MeshError('MESH_E_USAGE', `policy ${what}: give KIND and NAME, e.g. TrafficRoute api`);
  return { kind: policyKindArg(positionals[0]), name: positionals[1] ?? '' };
}

function printYaml(io: CliIo, r: PolicyResource): void {
  io.stdout.write(
    `# ${r.kind} ${r.name}: version ${r.version}, revision ${r.revision}, updated ${iso(r.updated_at_ms)} by ${r.updated_by}\n`,
  );
  io.stdout.write(stringify(JSON.parse(r.json)));
}

export function policySpecs(stdin: () => Promise<string> = readProcessStdin): Spec[] {
  return [
    {
      name: 'policy apply',
      summary: 'create or update policy resources, all or nothing (prints created/updated/unchanged and the revision)',
      usage: `-f FILE|- [--json]\n${FILE_HELP}  --json           print {"revision","changes":[{"kind","name","action"}]}\n`,
      options: { ...fileOption, ...jsonOption },
      async run(client, values, _p, io) {
        const documents = await readDocuments(values, stdin);
        const r = await client.call<ApplyResponse>('ApplyPolicies', { documents_json: documents, dry_run: false });
        if (values.json) {
          const changes = r.changes.map((c) => ({ kind: c.kind, name: c.name, action: c.action }));
          io.stdout.write(`${JSON.stringify({ revision: r.revision, changes })}\n`);
        } else {
          for (const c of r.changes) io.stdout.write(`${c.kind}/${c.name} ${c.action}\n`);
          io.stdout.write(`revision ${r.revision} (${counts(r.changes)})\n`);
        }
        return EXIT_OK;
      },
    },
    {
      name: 'policy diff',
      summary: 'what policy apply would change, field by field (stores nothing)',
      usage: `-f FILE|- [--json]\n${FILE_HELP}  --json           print {"revision","changes":[{"kind","name","action","fields":[...]}]}\n`,
      options: { ...fileOption, ...jsonOption },
      async run(client, values, _p, io) {
        const documents = await readDocuments(values, stdin);
        const r = await client.call<ApplyResponse>('ApplyPolicies', { documents_json: documents, dry_run: true });
        if (values.json) {
          const changes = r.changes.map((c) => ({ kind: c.kind, name: c.name, action: c.action, fields: fieldChanges(c) }));
          io.stdout.write(`${JSON.stringify({ revision: r.revision, changes })}\n`);
          return EXIT_OK;
        }
        for (const c of r.changes) {
          io.stdout.write(`${c.kind}/${c.name} ${c.action === 'unchanged' ? 'unchanged' : `would be ${c.action}`}\n`);
          if (c.action === 'created')
            for (const line of stringify(parseJson(c.after_json)).trimEnd().split('\n')) io.stdout.write(`  + ${line}\n`);
          for (const f of fieldChanges(c)) io.stdout.write(`${formatFieldChange(f)}\n`);
        }
        io.stdout.write(
          `revision ${r.revision}: nothing stored (apply: ${counts(r.changes).replace(/ (created|updated)/g, ' to be $1')})\n`,
        );
        return EXIT_OK;
      },
    },
    {
      name: 'policy get',
      summary: 'print one policy resource as applied (YAML you can apply again, or JSON)',
      usage:
        'KIND NAME [-o yaml|json]\n  KIND             ServiceIdentity, TrafficRoute, TrafficPolicy, AuthorizationPolicy, PeerAuthentication, RateLimit or MeshTelemetry (any case)\n  -o, --output F   yaml (default: the document, after a comment with version and revision) or json (the document)\n',
      options: { output: { type: 'string', short: 'o' } },
      positionals: true,
      async run(client, values, positionals, io) {
        const { kind, name } = oneName(positionals, 'get');
        const output = values.output ?? 'yaml';
        if (output !== 'yaml' && output !== 'json')
          throw new MeshError('MESH_E_USAGE', `-o ${String(output)}: use yaml or json`, { details: { flag: 'output' } });
        const r = await client.call<PolicyResource>('GetPolicy', { kind, name });
        if (output === 'json') io.stdout.write(`${JSON.stringify(JSON.parse(r.json), null, 2)}\n`);
        else printYaml(io, r);
        return EXIT_OK;
      },
    },
    {
      name: 'policy list',
      summary: 'list policy resources with their version and revision, and the mesh revision',
      usage: '[--kind KIND] [--json]\n  --kind KIND   only this kind\n  --json        print {"revision","resources":[...]}\n',
      options: { kind: { type: 'string' }, ...jsonOption },
      async run(client, values, _p, io) {
        const kind = values.kind === undefined ? '' : policyKindArg(String(values.kind), '--kind');
        const r = await client.call<{ revision: number; resources: PolicyResource[] }>('ListPolicies', { kind });
        if (values.json) {
          const resources = r.resources.map((p) => ({
            kind: p.kind,
            name: p.name,
            version: p.version,
            revision: p.revision,
            updatedAt: iso(p.updated_at_ms),
            updatedBy: p.updated_by,
            document: JSON.parse(p.json) as unknown,
          }));
          io.stdout.write(`${JSON.stringify({ revision: r.revision, resources })}\n`);
          return EXIT_OK;
        }
        if (r.resources.length > 0)
          io.stdout.write(
            table([
              ['KIND', 'NAME', 'VERSION', 'REVISION', 'UPDATED', 'BY'],
              ...r.resources.map((p) => [p.kind, p.name, String(p.version), String(p.revision), iso(p.updated_at_ms), p.updated_by]),
            ]),
          );
        io.stdout.write(`${r.resources.length} resources, mesh revision ${r.revision}\n`);
        return EXIT_OK;
      },
    },
    {
      name: 'policy delete',
      summary: 'delete one policy resource (the revision moves on)',
      usage: 'KIND NAME [--json]\n  --json   print {"revision","changes":[...]}\n',
      options: jsonOption,
      positionals: true,
      async run(client, values, positionals, io) {
        const { kind, name } = oneName(positionals, 'delete');
        const r = await client.call<ApplyResponse>('DeletePolicy', { kind, name });
        if (values.json) io.stdout.write(`${JSON.stringify({ revision: r.revision, changes: [{ kind, name, action: 'deleted' }] })}\n`);
        else io.stdout.write(`${kind}/${name} deleted\nrevision ${r.revision}\n`);
        return EXIT_OK;
      },
    },
  ];
}

export function policyCommands(connect: Connect = connectAdmin, stdin: () => Promise<string> = readProcessStdin): Command[] {
  return policySpecs(stdin).map((s) => command(s, connect));
}
