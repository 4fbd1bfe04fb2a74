import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { watchDir } from '../../../agent/workloads/dir-watcher.js';
import { systemClock } from '../../../lib/clock.js';
import { createLogger } from '../../../lib/logger.js';
import { waitFor } from '../../support/wait.js';

t.test('a burst of changes calls onChange once; a missing directory is retried', async (t) => {
  const base = await mkdtemp(path.join(os.tmpdir(), 'dirwatch-'));
  const dir = path.join(base, 'w');
  const lines: string[] = [];
  let changes = 0;
  const watcher = watchDir({
    dir,
    clock: systemClock,
    log: createLogger({ sink: { write: (l) => lines.push(l) } }),
    onChange: () => changes++,
    debounceMs: 50,
    retryMs: 50,
  });
  t.teardown(() => watcher.close());
  t.ok(lines.some((l) => l.includes('cannot watch')));
  await mkdir(dir);
  await waitFor(async () => (changes >= 1 ? true : undefined), { what: 'the first change after the directory appeared' });
  t.ok(lines.some((l) => l.includes('watching workloads directory')));
  const n = changes;
  await writeFile(path.join(dir, 'a.yaml'), 'a');
  await writeFile(path.join(dir, 'b.yaml'), 'b');
  await rm(path.join(dir, 'a.yaml'));
  await waitFor(async () => (changes > n ? true : undefined), { what: 'a change' });
  await new Promise((r) => setTimeout(r, 150));
  t.equal(changes, n + 1, 'one call for the burst');
});
