/**
 * Content hashes for xDS versions: sha256 (hex) of a stable JSON
 * serialization (object keys sorted, undefined members left out), so equal
 * content gives an equal version whatever the construction order.
 */
import { createHash } from 'node:crypto';

export function stableJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : stableJson(v))).join(',')}]`;
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj)
    .filter((k) => obj[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${stableJson(obj[k])}`).join(',')}}`;
}

export function contentHash(value: unknown): string {
  return createHash('sha256').update(stableJson(value)).digest('hex');
}

/**
 * sha256 (hex) of a sequence of (group, name, version) entries, one line
 * each: the version of a set of already hashed resources (a
 * snapshot, an xDS response) without building its JSON first. Equal
 * sequences give equal hashes; names are JSON-quoted, so no two sequences
 * meet.
 */
export function entriesHash(entries: Iterable<readonly [string, string, string]>): string {
  let text = '';
  for (const [group, name, version] of entries) text += entryLine(group, name, version);
  return createHash('sha256').update(text).digest('hex');
}

const entryLine = (group: string, name: string, version: string): string => `${group}\0${JSON.stringify(name)}\0${version}\n`;

/** entriesHash of a name -> version map in its iteration order with an empty group, without making the tuples. */
export function versionsHash(byName: ReadonlyMap<string, string>): string {
  let text = '';
  for (const [name, version] of byName) text += entryLine('', name, version);
  return createHash('sha256').update(text).digest('hex');
}
