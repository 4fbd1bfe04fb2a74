/**
 * The list of mesh services (transparent proxy): one blocking query loop on
 * Consul's service list, filtered to services with an instance in the mesh
 * (ConsulClient.meshServices). With capture on, apps call any mesh service by
 * address or Consul DNS name, with no `upstreams[]` entry, so the agent must
 * watch them all: the names feed the catalog watcher's setServices
 * (agent/run/agent.ts). While Consul is unreachable the last known names stay
 * (their instances too, in the catalog watcher).
 */
import { type BackoffPolicy, backoffDelay } from '../../lib/backoff.js';
import type { Clock, TimerHandle } from '../../lib/clock.js';
import { toMeshError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import type { ConsulClient } from './consul-client.js';

export interface MeshServicesWatchOptions {
  client: ConsulClient;
  clock: Clock;
  log: Logger;
  backoff: BackoffPolicy;
  waitMs: number;
  /** Last known names (e.g. the mesh services of the view on disk), kept until Consul answers. */
  initial?: readonly string[];
  /** Called with the new names (sorted) each time the list changes. */
  onChange: (names: readonly string[]) => void;
  random?: () => number;
}

export interface MeshServicesWatch {
  names(): readonly string[];
  state(): { readonly index: number; readonly healthy: boolean; readonly error?: string };
  stop(): void;
}

export function watchMeshServices(options: MeshServicesWatchOptions): MeshServicesWatch {
  const { client, clock, log } = options;
  const abort = new AbortController();
  let names: readonly string[] = [...(options.initial ?? [])].sort();
  let index = 0;
  let error: string | undefined;
  let sleep: TimerHandle | undefined;
  let wake: (() => void) | undefined;

  const run = async () => {
    let failures = 0;
    while (!abort.signal.aborted) {
      try {
        const result = await client.meshServices({ index, waitMs: options.waitMs, signal: abort.signal });
        if (abort.signal.aborted) return;
        if (error !== undefined) log.info('mesh service list watch resumed', {});
        failures = 0;
        error = undefined;
        // Block on the answer's index next, even when it went backwards (a restarted Consul).
        index = Math.max(1, result.index);
        if (result.names.join('\0') !== names.join('\0')) {
          names = [...result.names];
          options.onChange(names);
        }
      } catch (err) {
        if (abort.signal.aborted) return;
        const e = toMeshError(err);
        if (error === undefined) log.warn('mesh service list watch failing; keeping the last known services', { error: e });
        error = e.message;
        index = 0;
        await new Promise<void>((resolve) => {
          wake = resolve;
          sleep = clock.setTimer(backoffDelay(options.backoff, failures++, options.random), resolve);
        });
      }
    }
  };
  void run();

  return {
    names: () => names,
    state: () => ({ index, healthy: error === undefined && index > 0, ...(error === undefined ? {} : { error }) }),
    stop() {
      abort.abort();
      sleep?.cancel();
      wake?.();
    },
  };
}
