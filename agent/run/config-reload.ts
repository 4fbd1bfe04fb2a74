/**
 * `systemctl reload mesh-agent` (SIGHUP): the configuration file is read
 * again. A file that does not load (bad YAML, a bad field, an unknown key)
 * is rejected: the agent keeps serving with the configuration it runs, logs
 * the error with the file and the field paths (MESH_E_CONFIG_INVALID), and
 * `mesh-agent status` shows it until a reload succeeds. A file that loads is
 * applied where it can be without a restart: Envoy gets the new bootstrap
 * and binary (a hot restart when either changed, also a binary replaced in
 * place). Changes elsewhere are named (restartNeeded): they take effect at
 * the next `systemctl restart`.
 */
import type { Clock } from '../../lib/clock.js';
import { isMeshError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import type { AgentConfig } from '../config/schema.js';

/** What status shows about the configuration file. */
export interface ConfigFileStatus {
  readonly file: string;
  /** loaded: the running configuration is the file's latest good content; rejected: the latest reload failed. */
  readonly state: 'loaded' | 'rejected';
  readonly lastReloadAt?: number;
  readonly error?: { readonly code: string; readonly message: string; readonly issues?: ReadonlyArray<{ path: string; message: string }> };
  /** Fields changed in the file that take effect only at the next restart. */
  readonly restartNeeded?: readonly string[];
  readonly envoy?: 'hot-restarted' | 'unchanged' | 'failed';
}

export interface ConfigReloaderOptions {
  file: string;
  initial: AgentConfig;
  load(file: string): Promise<AgentConfig>;
  /** Applies Envoy's part (absent without a data plane). */
  reloadEnvoy?(next: AgentConfig): Promise<'hot-restarted' | 'unchanged' | 'failed'>;
  clock: Clock;
  log: Logger;
}

export interface ConfigReloader {
  /** Reads the file again and applies it; never throws. Reloads run one at a time. */
  reload(): Promise<ConfigFileStatus>;
  status(): ConfigFileStatus;
}

/** Dotted paths (two levels deep) whose values differ between a and b. Pure. */
export function changedPaths(a: unknown, b: unknown, prefix = '', depth = 2): string[] {
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (depth > 0 && isObject(a) && isObject(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    return keys.flatMap((k) => changedPaths(a[k], b[k], prefix === '' ? k : `${prefix}.${k}`, depth - 1));
  }
  return JSON.stringify(a) === JSON.stringify(b) ? [] : [prefix];
}

/** Envoy's part, applied by a reload (the bootstrap is derived from the config, the binary is envoy.binary). */
const APPLIED = /^envoy(\.|$)/;

export function createConfigReloader(options: ConfigReloaderOptions): ConfigReloader {
  const { file, clock, log } = options;
  let current: ConfigFileStatus = { file, state: 'loaded' };
  let queue: Promise<ConfigFileStatus> = Promise.resolve(current);

  const once = async (): Promise<ConfigFileStatus> => {
    const at = clock.now();
    let next: AgentConfig;
    try {
      next = await options.load(file);
    } catch (err) {
      const code = isMeshError(err) ? err.code : 'MESH_E_CONFIG_INVALID';
      const issues =
        (isMeshError(err) ? (err.details as { issues?: Array<{ path: string; message: string }> } | undefined)?.issues : undefined) ?? [];
      current = {
        file,
        state: 'rejected',
        lastReloadAt: at,
        error: { code, message: (err as Error).message, ...(issues.length === 0 ? {} : { issues }) },
      };
      log.error('reload: the configuration file is invalid; the agent keeps running with its previous configuration', {
        code,
        file,
        fields: issues.map((i) => i.path),
        error: err,
      });
      return current;
    }
    const restartNeeded = changedPaths(options.initial, next).filter((p) => !APPLIED.test(p));
    const envoy = options.reloadEnvoy === undefined ? undefined : await options.reloadEnvoy(next);
    current = {
      file,
      state: 'loaded',
      lastReloadAt: at,
      ...(restartNeeded.length === 0 ? {} : { restartNeeded }),
      ...(envoy === undefined ? {} : { envoy }),
    };
    if (restartNeeded.length > 0)
      log.warn('reload: these changes take effect at the next restart (systemctl restart mesh-agent)', { file, fields: restartNeeded });
    log.info('reload: configuration file read again', { file, ...(envoy === undefined ? {} : { envoy }) });
    return current;
  };

  return {
    reload() {
      queue = queue.then(once, once);
      return queue;
    },
    status: () => current,
  };
}
