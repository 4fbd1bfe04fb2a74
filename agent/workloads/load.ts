/**
 * Reads every workload file of workloadsDir. Each bad file becomes a
 * WorkloadFileError (file, field, reason) and is left out; the good ones are
 * returned, so one broken file never stops the others. Files are taken in name
 * order, so for a duplicate workload name or port the later file is the bad one.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { type ConfigIssue, parseConfigText, validateConfig } from '../../lib/config-file.js';
import { deepFreeze } from '../../lib/deep-freeze.js';
import { isMeshError } from '../../lib/errors.js';
import { workloadSchema } from './schema.js';
import { toWorkload, type Workload, type WorkloadFileError } from './workload.js';

const EXTENSIONS = new Set(['.yaml', '.yml', '.json']);

export interface LoadedWorkloads {
  readonly workloads: readonly Workload[];
  readonly errors: readonly WorkloadFileError[];
}

export interface WorkloadContext {
  trustDomain: string;
  inboundPortOffset: number;
}

export function isWorkloadFileName(name: string): boolean {
  return !name.startsWith('.') && EXTENSIONS.has(path.extname(name));
}

function issuesOf(file: string, err: unknown): WorkloadFileError[] {
  if (isMeshError(err) && Array.isArray(err.details.issues)) {
    return (err.details.issues as ConfigIssue[]).map((i) => ({ file, field: i.path, reason: i.message }));
  }
  return [{ file, field: '', reason: (err as Error).message }];
}

/**
 * Parses one file's text into a Workload, or returns its errors. Pure. A
 * directory load passes one schema for all its files (built per load, not kept:
 * see workloadSchema).
 */
export function parseWorkload(
  file: string,
  text: string,
  ctx: WorkloadContext,
  schema: ReturnType<typeof workloadSchema> = workloadSchema(),
): Workload | WorkloadFileError[] {
  try {
    const parsed = validateConfig(schema, parseConfigText(text, file), file);
    const workload = toWorkload(file, parsed, ctx.trustDomain, ctx.inboundPortOffset);
    if (workload.meshPort > 65535) {
      return [{ file, field: 'port', reason: `port + mesh.inboundPortOffset is ${workload.meshPort}, above 65535; set meshPort` }];
    }
    return workload;
  } catch (err) {
    return issuesOf(file, err);
  }
}

/** Cross-file rules: unique names, unique app, mesh and upstream local ports. Pure. */
export function checkConflicts(candidates: readonly Workload[]): LoadedWorkloads {
  const workloads: Workload[] = [];
  const errors: WorkloadFileError[] = [];
  const names = new Map<string, string>();
  const ports = new Map<number, string>();
  for (const w of candidates) {
    const problem = ((): WorkloadFileError | undefined => {
      const sameName = names.get(w.name);
      if (sameName !== undefined)
        return { file: w.file, field: 'name', reason: `duplicate workload name "${w.name}" (also in ${sameName})` };
      const used: Array<[string, number]> = [
        ['port', w.port],
        ['meshPort', w.meshPort],
        ...w.upstreams.map((u, i): [string, number] => [`upstreams[${i}].localPort`, u.localPort]),
      ];
      const seen = new Set<number>();
      for (const [field, port] of used) {
        const owner = ports.get(port);
        if (owner !== undefined || seen.has(port)) {
          return { file: w.file, field, reason: `port ${port} is already used${owner ? ` by ${owner}` : ' in this file'}` };
        }
        seen.add(port);
      }
      return undefined;
    })();
    if (problem !== undefined) {
      errors.push(problem);
      continue;
    }
    names.set(w.name, w.file);
    ports.set(w.port, w.file).set(w.meshPort, w.file);
    for (const u of w.upstreams) ports.set(u.localPort, w.file);
    workloads.push(w);
  }
  return deepFreeze({ workloads, errors });
}

export async function loadWorkloads(dir: string, ctx: WorkloadContext): Promise<LoadedWorkloads> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter(isWorkloadFileName).sort();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return deepFreeze({ workloads: [], errors: [] });
    return deepFreeze({ workloads: [], errors: [{ file: dir, field: '', reason: `cannot read workloadsDir: ${(err as Error).message}` }] });
  }
  const candidates: Workload[] = [];
  const errors: WorkloadFileError[] = [];
  const schema = workloadSchema();
  for (const name of names) {
    const file = path.join(dir, name);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      errors.push({ file, field: '', reason: `cannot read: ${(err as Error).message}` });
      continue;
    }
    const result = parseWorkload(file, text, ctx, schema);
    if (Array.isArray(result)) errors.push(...result);
    else candidates.push(result);
  }
  const checked = checkConflicts(candidates);
  return deepFreeze({ workloads: checked.workloads, errors: [...errors, ...checked.errors] });
}
