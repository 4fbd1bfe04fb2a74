/**
 * When a process started, from /proc (the same way for both Envoys of
 * bench/vs-consul): field 22 of /proc/<pid>/stat is the start time in clock
 * ticks since boot, /proc/stat's `btime` the boot time in seconds since the
 * epoch. Resolution: one clock tick (10 ms at the usual 100 Hz).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** The starttime field (ticks since boot) of a /proc/<pid>/stat line; the command name may hold spaces and parentheses. */
export function parseStartTicks(stat: string): number {
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state); starttime is field 22.
  const ticks = Number(rest[22 - 3]);
  if (!Number.isInteger(ticks) || ticks < 0) throw new Error(`no start time in /proc stat line: ${stat.slice(0, 120)}`);
  return ticks;
}

/** The `btime` line of /proc/stat: boot time, seconds since the epoch. */
export function parseBootTime(procStat: string): number {
  const match = /^btime (\d+)$/m.exec(procStat);
  if (match?.[1] === undefined) throw new Error('no btime in /proc/stat');
  return Number(match[1]);
}

/** Start of the process in ms since the epoch, from boot time, its start ticks and ticks per second. */
export function startEpochMs(bootTimeS: number, startTicks: number, ticksPerSecond: number): number {
  return bootTimeS * 1000 + (startTicks * 1000) / ticksPerSecond;
}

let clockTicks: number | undefined;

function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    const out = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    clockTicks = Number.isInteger(out) && out > 0 ? out : 100;
  }
  return clockTicks;
}

/** When process `pid` started, ms since the epoch (compare with Date.now()). */
export function processStartMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return startEpochMs(parseBootTime(readFileSync('/proc/stat', 'utf8')), parseStartTicks(stat), ticksPerSecond());
}
