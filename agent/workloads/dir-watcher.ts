/**
 * Watches workloadsDir and calls onChange once per burst of file events
 * (editors write, rename and chmod in quick succession). A directory that
 * cannot be watched (missing) is retried; SIGHUP still reloads meanwhile.
 */
import { type FSWatcher, watch } from 'node:fs';
import type { Clock, TimerHandle } from '../../lib/clock.js';
import type { Logger } from '../../lib/logger.js';

export interface DirWatcher {
  close(): void;
}

export interface DirWatcherOptions {
  dir: string;
  clock: Clock;
  log: Logger;
  onChange: () => void;
  debounceMs?: number;
  retryMs?: number;
}

export function watchDir(options: DirWatcherOptions): DirWatcher {
  const { dir, clock, log, onChange } = options;
  const debounceMs = options.debounceMs ?? 100;
  const retryMs = options.retryMs ?? 5_000;
  let watcher: FSWatcher | undefined;
  let debounce: TimerHandle | undefined;
  let retry: TimerHandle | undefined;
  let closed = false;
  let warned = false;

  const fire = () => {
    debounce?.cancel();
    debounce = clock.setTimer(debounceMs, () => {
      debounce = undefined;
      if (!closed) onChange();
    });
  };

  const start = () => {
    retry = undefined;
    if (closed) return;
    try {
      watcher = watch(dir, { persistent: false }, fire);
      watcher.on('error', (err) => {
        log.warn('workloads directory watch failed; retrying', { dir, error: err });
        watcher?.close();
        watcher = undefined;
        retry = clock.setTimer(retryMs, start);
      });
      if (warned) {
        log.info('watching workloads directory', { dir });
        fire();
      }
      warned = false;
    } catch (err) {
      if (!warned) log.warn('cannot watch workloads directory; retrying (SIGHUP reloads meanwhile)', { dir, error: err });
      warned = true;
      retry = clock.setTimer(retryMs, start);
    }
  };
  start();

  return {
    close() {
      closed = true;
      debounce?.cancel();
      retry?.cancel();
      watcher?.close();
    },
  };
}
