import { readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { makeView } from '../../../agent/discovery/catalog-view.js';
import { createViewStore, VIEW_FILE } from '../../../agent/discovery/view-store.js';
import { createLogger } from '../../../lib/logger.js';
import { tempDir } from '../../support/temp-dir.js';

t.test('saves atomically and loads back as "disk"', async (t) => {
  const dir = path.join(await tempDir(t, 'view-store-'), 'data');
  const lines: string[] = [];
  const store = createViewStore(dir, createLogger({ sink: { write: (l) => lines.push(l) } }));
  t.same(await store.load(), [], 'nothing yet');
  const instance = {
    id: 'a-1',
    node: 'n',
    address: '1.2.3.4',
    appPort: 1,
    meshPort: 2,
    spiffeId: 's',
    protocol: 'tcp',
    tags: ['x'],
    meta: {},
    weight: 1,
    datacenter: 'dc1',
    zone: '',
    health: 'passing' as const,
  };
  await store.save(makeView(3, [{ name: 'a', instances: [instance], source: 'consul' }]), 42);
  const saved = JSON.parse(await readFile(path.join(dir, VIEW_FILE), 'utf8'));
  t.equal(saved.format, 1);
  t.equal(saved.savedAt, 42);
  t.equal((await stat(path.join(dir, VIEW_FILE))).mode & 0o777, 0o600);
  t.same(await store.load(), [{ name: 'a', instances: [instance], source: 'disk' }]);
  await writeFile(path.join(dir, VIEW_FILE), '{"format":9}');
  t.same(await store.load(), []);
  t.ok(lines.some((l) => l.includes('ignoring an unreadable')));
  const bad = createViewStore(path.join(dir, VIEW_FILE, 'x'), createLogger({ sink: { write: (l) => lines.push(l) } }));
  t.same(await bad.load(), []);
  t.ok(lines.some((l) => l.includes('cannot read the last known catalog')));
});
