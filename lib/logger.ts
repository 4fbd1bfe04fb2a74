/**
 * Structured logger: one JSON object per line (for journald and log shippers),
 * or a human-readable line for a terminal. Child loggers add bindings such as
 * the component name. Fields whose names look secret are redacted, so a token
 * or a private key passed by mistake never reaches a log line.
 */
import { type Clock, systemClock } from './clock.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFormat = 'json' | 'human';
export type LogFields = Record<string, unknown>;

export interface LogSink {
  write(line: string): void;
}

export interface Logger {
  readonly level: LogLevel;
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(bindings: LogFields): Logger;
}

export interface LoggerOptions {
  level?: LogLevel;
  format?: LogFormat;
  sink?: LogSink;
  clock?: Clock;
  bindings?: LogFields;
}

const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const SECRET_KEY = /(token|secret|password|passwd|private.?key|^key$|authorization)/i;
export const REDACTED = '[redacted]';

export function isLogLevel(value: string): value is LogLevel {
  return Object.hasOwn(LEVELS, value);
}

function serialize(value: unknown, key: string, depth: number): unknown {
  if (SECRET_KEY.test(key)) return REDACTED;
  if (value instanceof Error) {
    const out: LogFields = { message: value.message };
    const code = (value as { code?: unknown }).code;
    if (code !== undefined) out.code = code;
    const details = (value as { details?: unknown }).details;
    if (details !== undefined) out.details = serialize(details, '', depth + 1);
    return out;
  }
  if (typeof value === 'bigint') return value.toString();
  if (depth > 6 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((item) => serialize(item, '', depth + 1));
  if (Buffer.isBuffer(value)) return `<${value.length} bytes>`;
  const out: LogFields = {};
  for (const [k, v] of Object.entries(value)) out[k] = serialize(v, k, depth + 1);
  return out;
}

function humanValue(value: unknown): string {
  if (typeof value === 'string') return /[\s"=]/.test(value) ? JSON.stringify(value) : value;
  return JSON.stringify(value);
}

export function formatRecord(format: LogFormat, record: LogFields): string {
  if (format === 'json') return JSON.stringify(record);
  const { time, level, msg, component, ...rest } = record;
  const clock = typeof time === 'string' ? time.slice(11, 23) : '';
  const parts = [clock, String(level).toUpperCase().padEnd(5)];
  if (component !== undefined) parts.push(`[${String(component)}]`);
  parts.push(String(msg));
  for (const [k, v] of Object.entries(rest)) parts.push(`${k}=${humanValue(v)}`);
  return parts.join(' ');
}

const stderrSink: LogSink = { write: (line) => process.stderr.write(`${line}\n`) };

export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? 'info';
  const format = options.format ?? 'json';
  const sink = options.sink ?? stderrSink;
  const clock = options.clock ?? systemClock;
  const bindings = (serialize(options.bindings ?? {}, '', 0) ?? {}) as LogFields;
  const threshold = LEVELS[level];

  const emit = (lvl: LogLevel, msg: string, fields?: LogFields): void => {
    if (LEVELS[lvl] < threshold) return;
    const record: LogFields = {
      time: new Date(clock.now()).toISOString(),
      level: lvl,
      ...bindings,
      msg,
      ...((fields === undefined ? {} : serialize(fields, '', 0)) as LogFields),
    };
    sink.write(formatRecord(format, record));
  };

  return {
    level,
    debug: (msg, fields) => emit('debug', msg, fields),
    info: (msg, fields) => emit('info', msg, fields),
    warn: (msg, fields) => emit('warn', msg, fields),
    error: (msg, fields) => emit('error', msg, fields),
    child: (more) => createLogger({ level, format, sink, clock, bindings: { ...bindings, ...more } }),
  };
}

/** A logger that drops everything, for code paths where logging is optional. */
export const silentLogger: Logger = createLogger({ level: 'error', sink: { write: () => {} } });
