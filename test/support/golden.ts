/**
 * Golden files: `matchGolden(t, 'xds/listeners.json', value)` compares value
 * with test/golden/xds/listeners.json; with UPDATE_GOLDEN=1 it rewrites the
 * file instead. Golden files are the spec: review their diffs by eye.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const GOLDEN_DIR = fileURLToPath(new URL('../golden/', import.meta.url));

interface Asserter {
  strictSame(found: unknown, wanted: unknown, message: string): boolean;
  fail(message: string): boolean;
  pass(message: string): boolean;
}

export function goldenText(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

export function matchGolden(t: Asserter, relPath: string, value: unknown): void {
  const file = path.join(GOLDEN_DIR, relPath);
  const text = goldenText(value);
  if (process.env.UPDATE_GOLDEN === '1') {
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, text);
    t.pass(`rewrote golden file ${relPath}`);
    return;
  }
  let wanted: string;
  try {
    wanted = readFileSync(file, 'utf8');
  } catch {
    t.fail(`golden file ${relPath} is missing: run the test with UPDATE_GOLDEN=1 and review it`);
    return;
  }
  // Compare parsed values (a clear diff) and then the exact text (key order, formatting).
  if (t.strictSame(JSON.parse(text), JSON.parse(wanted), `${relPath} matches its golden file (UPDATE_GOLDEN=1 rewrites it)`)) {
    if (text !== wanted) t.fail(`${relPath}: same content, different key order or formatting (UPDATE_GOLDEN=1 rewrites it)`);
  }
}
