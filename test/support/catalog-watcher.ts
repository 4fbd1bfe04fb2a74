/**
 * The agent's catalog watcher on a real Consul dev agent, wired as the agent
 * wires it (its HTTP client in agent mode, the system clock, backoff from 100
 * ms to 1 s), for the test and the benchmark of the catalog watch.
 */
import { createCatalogWatcher } from '../../agent/discovery/catalog-watch.js';
import { createConsulHttpClient } from '../../agent/discovery/consul-http.js';
import { systemClock } from '../../lib/clock.js';
import { createLogger } from '../../lib/logger.js';
import type { ConsulDev } from './consul.js';

export interface WatcherOptions {
  /** The blocking queries' wait. */
  waitMs: number;
  /** How long the watcher gathers changes into one view. */
  coalesceMs: number;
  /** Default: the agent's own (left empty). */
  datacenter?: string;
}

export function consulCatalogWatcher(dev: Pick<ConsulDev, 'httpAddr' | 'nodeName'>, options: WatcherOptions) {
  const client = createConsulHttpClient({
    mode: 'agent',
    address: dev.httpAddr,
    token: '',
    datacenter: options.datacenter ?? '',
    nodeName: dev.nodeName,
    nodeAddress: '127.0.0.1',
  });
  return createCatalogWatcher({
    client,
    clock: systemClock,
    log: createLogger({ level: 'warn' }),
    backoff: { initialMs: 100, maxMs: 1000 },
    waitMs: options.waitMs,
    coalesceMs: options.coalesceMs,
  });
}
