/**
 * The last known catalog, kept in dataDir/catalog-view.json so an agent that
 * restarts while Consul is down still has it. Written atomically (temp file,
 * fsync, rename). Format: {"format":1,"savedAt":<ms>,"services":{name:{name,instances}}}.
 */
import { mkdir, open, readFile, rename } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../../lib/logger.js';
import type { CatalogInstance, CatalogView, ServiceView } from './catalog-view.js';

export const VIEW_FILE = 'catalog-view.json';
const FORMAT = 1;

export interface ViewStore {
  load(): Promise<ServiceView[]>;
  save(view: CatalogView, savedAt: number): Promise<void>;
}

export function createViewStore(dataDir: string, log: Logger): ViewStore {
  const file = path.join(dataDir, VIEW_FILE);
  return {
    async load() {
      let text: string;
      try {
        text = await readFile(file, 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') log.warn('cannot read the last known catalog', { file, error: err });
        return [];
      }
      try {
        const parsed = JSON.parse(text) as { format?: number; services?: Record<string, { name: string; instances: CatalogInstance[] }> };
        if (parsed.format !== FORMAT || typeof parsed.services !== 'object' || parsed.services === null) throw new Error('unknown format');
        return Object.values(parsed.services).map((s) => ({ name: s.name, instances: s.instances, source: 'disk' as const }));
      } catch (err) {
        log.warn('ignoring an unreadable last known catalog', { file, error: err });
        return [];
      }
    },
    async save(view, savedAt) {
      await mkdir(dataDir, { recursive: true, mode: 0o700 });
      const services: Record<string, { name: string; instances: readonly CatalogInstance[] }> = {};
      for (const s of Object.values(view.services)) services[s.name] = { name: s.name, instances: s.instances };
      const temp = `${file}.${process.pid}.tmp`;
      const handle = await open(temp, 'w', 0o600);
      try {
        await handle.writeFile(JSON.stringify({ format: FORMAT, savedAt, services }));
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, file);
    },
  };
}
