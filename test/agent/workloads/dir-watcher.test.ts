import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { watchDir } from '../../../agent/workloads/dir-watcher.js';
import { createLogger } from '../../../lib/logger.js';
import { FakeClock } from '../../fakes/clock.js';
import { tempDir } from '../../support/temp-dir.js';
import { waitFor } from '../../support/wait.js';

t.test('a burst of changes calls onChange once; a missing directory is retried', async (t) => {
  const dir = path.join(await tempDir(t, 'dirwatch-'), 'w');
  const clock = new FakeClock();
  const lines: string[] = [];
  let changes = 0;
  const watcher = watchDir({
    dir,
    clock,
    log: createLogger({ sink: { write: (l) => lines.push(l) } }),
    onChange: () => changes++,
    debounceMs: 50,
    retryMs: 1_000,
  });
  t.teardown(() => watcher.close());
  t.ok(
    lines.some((l) => l.includes('cannot watch')),
    'a missing directory is reported',
  );
  t.equal(clock.pending(), 1, 'and retried on a timer');

  await mkdir(dir);
  clock.advance(1_000);
  t.ok(
    lines.some((l) => l.includes('watching workloads directory')),
    'the retry finds it',
  );
  clock.advance(50);
  t.equal(changes, 1, 'one change once the directory appeared (its files may be new)');

  await writeFile(path.join(dir, 'a.yaml'), 'a');
  await writeFile(path.join(dir, 'b.yaml'), 'b');
  await rm(path.join(dir, 'a.yaml'));
  // The file events arrive from the OS; the first one arms the debounce timer.
  await waitFor(async () => (clock.pending() > 0 ? true : undefined), { what: 'a file event' });
  t.equal(changes, 1, 'nothing before the debounce time passed');
  clock.advance(50);
  t.equal(changes, 2, 'one call for the burst');

  watcher.close();
  t.equal(clock.pending(), 0, 'close cancels the timers');
});
