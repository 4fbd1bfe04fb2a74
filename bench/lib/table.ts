/** Prints benchmark rows as an aligned text table (the form every benchmark reports in). */
export function formatTable(headers: readonly string[], rows: ReadonlyArray<ReadonlyArray<string | number>>): string {
  const cells = [headers, ...rows.map((row) => row.map((c) => (typeof c === 'number' ? formatNumber(c) : c)))];
  const widths = headers.map((_, i) => Math.max(...cells.map((row) => String(row[i] ?? '').length)));
  const line = (row: ReadonlyArray<string | number>) =>
    row
      .map((c, i) => String(c).padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

/** The same rows as a Markdown table (for bench/README.md); numbers formatted as formatTable does. */
export function formatMarkdownTable(headers: readonly string[], rows: ReadonlyArray<ReadonlyArray<string | number>>): string {
  const line = (row: ReadonlyArray<string | number>) => `| ${row.map((c) => (typeof c === 'number' ? formatNumber(c) : c)).join(' | ')} |`;
  return [line(headers), `|${headers.map(() => '---').join('|')}|`, ...rows.map(line)].join('\n');
}

function formatNumber(n: number): string {
  if (Number.isInteger(n)) return n.toLocaleString('en-US');
  return n >= 100 ? n.toFixed(0) : n.toFixed(2);
}

/** Runs fn repeatedly for about `ms` milliseconds; returns operations per second and mean microseconds. */
export function measure(fn: () => void, ms = 1000): { opsPerSec: number; meanUs: number; ops: number } {
  for (let i = 0; i < 100; i++) fn();
  let ops = 0;
  const start = process.hrtime.bigint();
  const limit = start + BigInt(ms) * 1_000_000n;
  let now = start;
  while (now < limit) {
    for (let i = 0; i < 50; i++) fn();
    ops += 50;
    now = process.hrtime.bigint();
  }
  const seconds = Number(now - start) / 1e9;
  return { opsPerSec: ops / seconds, meanUs: (seconds * 1e6) / ops, ops };
}

/** measure() for asynchronous operations, awaited one after another. */
export async function measureAsync(fn: () => Promise<unknown>, ms = 1000): Promise<{ opsPerSec: number; meanUs: number; ops: number }> {
  for (let i = 0; i < 20; i++) await fn();
  let ops = 0;
  const start = process.hrtime.bigint();
  const limit = start + BigInt(ms) * 1_000_000n;
  let now = start;
  while (now < limit) {
    await fn();
    ops++;
    now = process.hrtime.bigint();
  }
  const seconds = Number(now - start) / 1e9;
  return { opsPerSec: ops / seconds, meanUs: (seconds * 1e6) / ops, ops };
}
