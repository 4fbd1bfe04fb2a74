/** How meshctl prints: ISO times ('-' for none) and aligned tables. */

export const iso = (ms: number) => (ms ? new Date(Number(ms)).toISOString() : '-');

export function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return `${rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')}\n`;
}
