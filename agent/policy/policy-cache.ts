/**
 * The last policy set the control plane sent, kept at <dataDir>/policy/policy.json
 * (mode 0600 in a 0700 folder, written atomically: temp file, fsync, rename),
 * with the interest it was sent for and when it arrived. Read at start so an
 * agent restarted while the control plane is unreachable serves it.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import * as z from 'zod';
import { MeshError } from '../../lib/errors.js';
import { POLICY_KINDS, type PolicySet } from '../../lib/policy/schema.js';
import { ensurePrivateDir, writeFileAtomic } from '../../lib/secret-files.js';

export interface CachedPolicy {
  readonly set: PolicySet;
  /** The interest the set was filtered for: a different one is not resumed from (revision 0 is sent). */
  readonly interest: { readonly services: readonly string[]; readonly spiffeIds: readonly string[] };
  readonly receivedAt: number;
}

/** The file's schema, built for the one read at start and dropped after it (agent/config/schema.ts says why). */
function fileSchema() {
  const count = z.number().int().min(0);
  return z.strictObject({
    revision: count,
    interest: z.strictObject({ services: z.array(z.string()), spiffeIds: z.array(z.string()) }),
    receivedAt: count,
    resources: z.array(
      z.strictObject({ kind: z.enum(POLICY_KINDS), name: z.string().min(1), version: count, revision: count, source: z.unknown() }),
    ),
  });
}

export function policyCachePath(dataDir: string): string {
  return path.join(dataDir, 'policy', 'policy.json');
}

export async function savePolicyCache(file: string, cached: CachedPolicy): Promise<void> {
  await ensurePrivateDir(path.dirname(file));
  const body = {
    revision: cached.set.revision,
    interest: cached.interest,
    receivedAt: cached.receivedAt,
    resources: cached.set.resources,
  };
  await writeFileAtomic(file, `${JSON.stringify(body, null, 1)}\n`, 0o600);
}

/** The cached set; undefined when there is no file; MESH_E_POLICY_CACHE_INVALID (naming the file and field) when it is damaged. */
export async function loadPolicyCache(file: string): Promise<CachedPolicy | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new MeshError('MESH_E_POLICY_CACHE_INVALID', `cannot read ${file}: ${(err as Error).message}`, { cause: err, details: { file } });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new MeshError('MESH_E_POLICY_CACHE_INVALID', `${file} is not JSON: ${(err as Error).message}`, { cause: err, details: { file } });
  }
  const parsed = fileSchema().safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue?.path.join('.') ?? '';
    throw new MeshError('MESH_E_POLICY_CACHE_INVALID', `${file}: ${field === '' ? '' : `${field}: `}${issue?.message ?? 'invalid'}`, {
      details: { file, field },
    });
  }
  const { revision, interest, receivedAt, resources } = parsed.data;
  return { set: { revision, resources }, interest, receivedAt };
}
