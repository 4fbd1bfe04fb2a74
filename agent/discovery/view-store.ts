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
/** Instances serialized before save() lets other work run (about a quarter of a millisecond of work). */
const SERIALIZE_INSTANCES_PER_TURN = 100;

export interface ViewStore {
  load(): Promise<ServiceView[]>;
  save(view: CatalogView, savedAt: number): Promise<void>;
}

/** Lets other work run between parts of a save (a turn of the event loop by default; tests count them). */
export type YieldTurn = () => Promise<void>;

const nextTurn: YieldTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

export function createViewStore(dataDir: string, log: Logger, yieldTurn: YieldTurn = nextTurn): ViewStore {
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
      // Serialized a few services per turn of the event loop: the whole view is 700 KB of JSON at 200 upstreams x 10,
      // and a catalog change arriving meanwhile must not wait for all of it (the agent's propagation tail). Written
      // as it is serialized, a part at a time: the whole text never exists at once (it, and the Buffer made of it,
      // were 1.4 MB of garbage per save). The handle's writeFile writes a part whole, at the file's position.
      const temp = `${file}.${process.pid}.tmp`;
      const handle = await open(temp, 'w', 0o600);
      try {
        let chunk = `{"format":${FORMAT},"savedAt":${JSON.stringify(savedAt)},"services":{`;
        let first = true;
        let sinceYield = 0;
        for (const s of Object.values(view.services)) {
          chunk += `${first ? '' : ','}${JSON.stringify(s.name)}:${JSON.stringify({ name: s.name, instances: s.instances })}`;
          first = false;
          sinceYield += s.instances.length;
          if (sinceYield >= SERIALIZE_INSTANCES_PER_TURN) {
            sinceYield = 0;
            await handle.writeFile(chunk);
            chunk = '';
            await yieldTurn();
          }
        }
        await handle.writeFile(`${chunk}}}`);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, file);
    },
  };
}
