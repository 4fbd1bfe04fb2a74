/**
 * What changes between a stored policy document and the one applied (pure):
 * field-level entries with paths (`spec.http[0].timeout`), for
 * `meshctl policy diff`.
 */
import { formatFieldPath } from '../../lib/config-file.js';

export interface FieldChange {
  readonly op: 'added' | 'removed' | 'changed';
  readonly path: string;
  readonly before?: unknown;
  readonly after?: unknown;
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

export function diffValues(before: unknown, after: unknown, path: Array<string | number> = []): FieldChange[] {
  if (isObject(before) && isObject(after)) {
    const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])];
    return keys.flatMap((k) => {
      if (!(k in after)) return [{ op: 'removed' as const, path: formatFieldPath([...path, k]), before: before[k] }];
      if (!(k in before)) return [{ op: 'added' as const, path: formatFieldPath([...path, k]), after: after[k] }];
      return diffValues(before[k], after[k], [...path, k]);
    });
  }
  if (Array.isArray(before) && Array.isArray(after)) {
    const out: FieldChange[] = [];
    for (let i = 0; i < Math.max(before.length, after.length); i++) {
      if (i >= after.length) out.push({ op: 'removed', path: formatFieldPath([...path, i]), before: before[i] });
      else if (i >= before.length) out.push({ op: 'added', path: formatFieldPath([...path, i]), after: after[i] });
      else out.push(...diffValues(before[i], after[i], [...path, i]));
    }
    return out;
  }
  if (JSON.stringify(before) === JSON.stringify(after)) return [];
  return [{ op: 'changed', path: formatFieldPath(path), before, after }];
}

/** `  ~ spec.http[0].timeout: "2s" -> "3s"`, `  + path: value`, `  - path: value`. */
export function formatFieldChange(c: FieldChange): string {
  const show = (v: unknown) => JSON.stringify(v);
  if (c.op === 'added') return `  + ${c.path}: ${show(c.after)}`;
  if (c.op === 'removed') return `  - ${c.path}: ${show(c.before)}`;
  return `  ~ ${c.path}: ${show(c.before)} -> ${show(c.after)}`;
}
