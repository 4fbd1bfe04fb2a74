/** Percentiles and process memory for the benchmarks' tables. */
import { readFileSync } from 'node:fs';

/** The p-th percentile (nearest rank) of the values; NaN for none. */
export function pct(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? Number.NaN;
}

/** A `<name>: N kB` field of /proc/<pid>/status in MB. */
function statusMb(pid: number, name: string): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').match(new RegExp(`${name}:\\s+(\\d+) kB`));
  return Number(line?.[1] ?? 0) / 1024;
}

/** VmRSS of a process in MB (this process when pid is absent). */
export function rssMb(pid?: number): number {
  return pid === undefined ? process.memoryUsage().rss / 1_048_576 : statusMb(pid, 'VmRSS');
}

/** VmHWM (peak RSS) of a process in MB. */
export function peakRssMb(pid: number): number {
  return statusMb(pid, 'VmHWM');
}

/** RssAnon (heap, stacks) and RssFile (mapped files: the node binary) of a process in MB. */
export function rssParts(pid: number): { anon: number; file: number } {
  return { anon: statusMb(pid, 'RssAnon'), file: statusMb(pid, 'RssFile') };
}
