/**
 * The Envoy command line, a pure function of the supervisor's settings. Every
 * epoch gets its own bootstrap and admin-address file, so a hot-restart child
 * never reads a file its parent still uses. Envoy refuses to start unless the
 * parent shutdown time is longer than the drain time, so both are whole seconds
 * and the shutdown time is at least one second more.
 */
import path from 'node:path';

export interface EnvoyArgsInput {
  workDir: string;
  epoch: number;
  baseId: number;
  drainTimeMs: number;
  parentShutdownMs: number;
  concurrency: number;
  logLevel: string;
}

export function bootstrapPath(workDir: string, epoch: number): string {
  return path.join(workDir, `bootstrap-${epoch}.json`);
}

export function adminAddressPath(workDir: string, epoch: number): string {
  return path.join(workDir, `admin-address-${epoch}`);
}

/** --drain-time-s and --parent-shutdown-time-s, whole seconds, shutdown > drain. */
export function drainSeconds(drainTimeMs: number, parentShutdownMs: number): { drain: number; parentShutdown: number } {
  const drain = Math.max(1, Math.ceil(drainTimeMs / 1000));
  const parentShutdown = Math.max(drain + 1, Math.ceil(parentShutdownMs / 1000));
  return { drain, parentShutdown };
}

export function envoyArgs(input: EnvoyArgsInput): string[] {
  const { drain, parentShutdown } = drainSeconds(input.drainTimeMs, input.parentShutdownMs);
  return [
    '-c',
    bootstrapPath(input.workDir, input.epoch),
    '--restart-epoch',
    String(input.epoch),
    '--base-id',
    String(input.baseId),
    '--admin-address-path',
    adminAddressPath(input.workDir, input.epoch),
    '--drain-time-s',
    String(drain),
    '--parent-shutdown-time-s',
    String(parentShutdown),
    '--concurrency',
    String(input.concurrency),
    '--log-level',
    input.logLevel,
  ];
}

/** `envoy --mode validate`: loads the whole configuration, binds nothing, touches no running epoch. */
export function validateArgs(bootstrapFile: string): string[] {
  return ['--mode', 'validate', '-c', bootstrapFile, '--log-level', 'error'];
}

/** The release from `envoy --version` ("envoy  version: <sha>/1.40.0/Clean/RELEASE/BoringSSL"). */
export function parseEnvoyVersion(output: string): string | undefined {
  return /version: [0-9a-f]+\/(\d+\.\d+\.\d+)\//.exec(output)?.[1];
}
