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

t.test('a large view is saved in turns of the event loop, and reads back whole', async (t) => {
  const dir = path.join(await tempDir(t, 'view-store-big-'), 'data');
  const store = createViewStore(dir, createLogger({ sink: { write: () => {} } }));

  const instance = (service: string, n: number) => ({
    id: `${service}-${n}`,
    node: `node-${n}`,
    address: `10.0.0.${n}`,
    appPort: 8080,
    meshPort: 18080,
    spiffeId: `spiffe://example.org/ns/default/sa/${service}`,
    protocol: 'http',
    tags: [],
    meta: { note: 'a "quoted" value' },
    weight: 1,
    datacenter: 'dc1',
    zone: '',
    health: 'passing' as const,
  });
  const services = Array.from({ length: 50 }, (_, i) => `svc-${i}`).map((name) => ({
    name,
    instances: Array.from({ length: 10 }, (_, n) => instance(name, n)),
    source: 'consul' as const,
  }));
  let turns = 0;
  const counting = createViewStore(dir, createLogger({ sink: { write: () => {} } }), async () => {
    turns++;
    await new Promise<void>((resolve) => setImmediate(resolve));
  });
  await counting.save(makeView(7, services), 99);
  t.equal(turns, 5, 'other work may run after each 100 of the 500 instances');
  const saved = JSON.parse(await readFile(path.join(dir, VIEW_FILE), 'utf8'));
  t.same(Object.keys(saved), ['format', 'savedAt', 'services']);
  t.equal(saved.savedAt, 99);
  const byName = (a: { name: string }, b: { name: string }) => (a.name < b.name ? -1 : 1);
  t.same((await store.load()).sort(byName), services.map((s) => ({ ...s, source: 'disk' })).sort(byName));
});
