/** The benchmarks' table printers: aligned text for the terminal, Markdown for bench/README.md, numbers formatted alike. */
import t from 'tap';
import { formatMarkdownTable, formatTable } from '../../bench/lib/table.js';

const headers = ['figure', 'ours', 'Consul'];
const rows = [
  ['p99 ms', 12.345, 250],
  ['issued', 12000, '-'],
];

t.test('formatTable aligns columns and formats numbers', async (t) => {
  t.equal(
    formatTable(headers, rows),
    ['figure  ours    Consul', '------  ------  ------', 'p99 ms  12.35   250', 'issued  12,000  -'].join('\n'),
  );
});

t.test('formatMarkdownTable writes the same cells as a Markdown table', async (t) => {
  t.equal(
    formatMarkdownTable(headers, rows),
    ['| figure | ours | Consul |', '|---|---|---|', '| p99 ms | 12.35 | 250 |', '| issued | 12,000 | - |'].join('\n'),
  );
});
