/**
 * Configuration files: YAML or JSON text, validated once against a zod schema
 * (defaults in the schema, unknown keys rejected with strict objects) into a
 * deeply frozen typed value. Every problem names the file and the field path
 * (`upstreams[0].localPort`), and all problems of a file are reported at once.
 */
import { readFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { deepFreeze } from './deep-freeze.js';
import { MeshError } from './errors.js';

export interface ConfigIssue {
  /** Field path, e.g. `consul.address` or `upstreams[1].service`; "" for the whole document. */
  path: string;
  message: string;
}

export function formatFieldPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out;
}

function invalid(file: string, issues: ConfigIssue[]): MeshError {
  const lines = issues.map((i) => `  ${i.path === '' ? '(document)' : i.path}: ${i.message}`);
  return new MeshError('MESH_E_CONFIG_INVALID', `${file}: invalid configuration:\n${lines.join('\n')}`, {
    details: { file, issues },
  });
}

/** Parses YAML (a superset of JSON) text; syntax errors name the file, line and column. */
export function parseConfigText(text: string, file: string): unknown {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw invalid(
      file,
      doc.errors.map((e) => {
        const pos = e.linePos?.[0];
        return {
          path: '',
          message: `${pos ? `line ${pos.line} column ${pos.col}: ` : ''}${(e.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '')}`,
        };
      }),
    );
  }
  return doc.toJS() ?? {};
}

/** Validates a parsed value against a schema; returns the frozen result with defaults applied. */
export function validateConfig<S extends z.ZodType>(schema: S, value: unknown, file: string): Readonly<z.output<S>> {
  const result = schema.safeParse(value);
  if (!result.success) {
    const issues: ConfigIssue[] = [];
    for (const issue of result.error.issues) {
      const base = formatFieldPath(issue.path);
      if (issue.code === 'unrecognized_keys') {
        for (const key of issue.keys) {
          issues.push({ path: formatFieldPath([...issue.path, key]), message: 'unknown field' });
        }
      } else {
        issues.push({ path: base, message: issue.message });
      }
    }
    throw invalid(file, issues);
  }
  return deepFreeze(result.data);
}

/** Reads and parses a config file without validating it (callers merge flags in first). */
export async function readConfigData(file: string): Promise<Record<string, unknown>> {
  const data = parseConfigText(await readText(file), file);
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw invalid(file, [{ path: '', message: 'must be a mapping of keys to values' }]);
  }
  return data as Record<string, unknown>;
}

async function readText(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new MeshError('MESH_E_CONFIG_INVALID', `${file}: cannot read: ${(err as Error).message}`, {
      details: { file, issues: [{ path: '', message: (err as NodeJS.ErrnoException).code ?? 'unreadable' }] },
      cause: err,
    });
  }
}

export async function loadConfigFile<S extends z.ZodType>(schema: S, file: string): Promise<Readonly<z.output<S>>> {
  return validateConfig(schema, parseConfigText(await readText(file), file), file);
}
