/**
 * A service that cannot start because of its configuration (a bad field, an
 * unreadable file, a host that has not joined): one JSON log line for the
 * journal with the file and the field paths, and exit code 78 (EX_CONFIG,
 * sysexits.h), on which the units' RestartPreventExitStatus= stops retrying,
 * so `systemctl start` fails at once and `systemctl status` shows why.
 */
import type { CliIo } from './cli.js';
import { isMeshError, type MeshError } from './errors.js';
import { createLogger, type LogFields, type Logger } from './logger.js';

export const EXIT_CONFIG = 78;

const CONFIG_CODES = new Set(['MESH_E_CONFIG_INVALID', 'MESH_E_NOT_JOINED', 'MESH_E_TRUST_DOMAIN_MISMATCH']);

export function isStartupConfigError(err: unknown): err is MeshError {
  return isMeshError(err) && CONFIG_CODES.has(err.code);
}

/** A JSON logger on the command's stderr, for errors before the configured logger exists. */
export function startupLogger(io: CliIo): Logger {
  return createLogger({ format: 'json', sink: { write: (line) => io.stderr.write(`${line}\n`) } });
}

/** The log fields of a configuration error: code, file, field paths, and the error itself. */
export function configErrorFields(file: string, err: MeshError): LogFields {
  const details = (err.details ?? {}) as { file?: string; issues?: Array<{ path: string; message: string }> };
  return {
    code: err.code,
    file: details.file ?? file,
    fields: (details.issues ?? []).map((i) => (i.path === '' ? '(document)' : i.path)),
    error: err,
  };
}
