import { readFileSync } from 'node:fs';
import t from 'tap';
import { parseBootTime, parseStartTicks, processStartMs, startEpochMs } from '../../bench/lib/proc-start.js';

t.test('parseStartTicks reads field 22, whatever the command name holds', async (t) => {
  const fields = (comm: string) =>
    `4242 (${comm}) S 1 4242 4242 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 1 0 987654 12345678 900 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0`;
  t.equal(parseStartTicks(fields('envoy')), 987654);
  t.equal(parseStartTicks(fields('a b) (c')), 987654);
  t.throws(() => parseStartTicks('1 (x) S'), /no start time/);
});

t.test('parseBootTime and startEpochMs', async (t) => {
  t.equal(parseBootTime('cpu  1 2 3\nintr 5\nbtime 1764000000\nprocesses 9\n'), 1764000000);
  t.throws(() => parseBootTime('cpu 1\n'), /no btime/);
  t.equal(startEpochMs(1764000000, 250, 100), 1764000002500);
  t.equal(startEpochMs(1, 3, 1000), 1003);
});

t.test('processStartMs of this process is in the past and after boot', async (t) => {
  const start = processStartMs(process.pid);
  const boot = parseBootTime(readFileSync('/proc/stat', 'utf8')) * 1000;
  t.ok(start <= Date.now(), 'not in the future');
  t.ok(start >= boot, 'after boot');
  // This process started at most as long ago as Node says it has been running (plus a tick or two).
  t.ok(Date.now() - start >= process.uptime() * 1000 - 50);
});
