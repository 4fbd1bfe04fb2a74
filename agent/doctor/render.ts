/** Doctor's report for a terminal: one line per check, its fix under it. Pure. */
import type { DoctorReport } from './runner.js';

const LABEL = { pass: 'PASS', warn: 'WARN', fail: 'FAIL' } as const;

export function renderReport(report: DoctorReport): string {
  const width = Math.max(...report.checks.map((c) => c.id.length), 6) + 2;
  const agent = report.agent.running
    ? `agent running${report.agent.pid === undefined ? '' : `, pid ${report.agent.pid}`}`
    : 'agent not running';
  const lines = [`mesh-agent doctor: ${report.config} (${agent})`, ''];
  for (const c of report.checks) {
    lines.push(`${LABEL[c.level]}  ${c.id.padEnd(width)}${c.detail}`);
    if (c.fix !== undefined) lines.push(`${' '.repeat(6 + width)}fix: ${c.fix}`);
  }
  const { pass, warn, fail } = report.counts;
  lines.push('', `${report.checks.length} checks: ${pass} pass, ${warn} warn, ${fail} fail`);
  return `${lines.join('\n')}\n`;
}
