/**
 * Envoy's stdout carries the JSON access log when accessLog.output is stdout
 * (agent/xds/resources/access-log.ts): those lines have `"kind":"access"`.
 * The supervisor logs them at info level (`msg: "access"`, the line's fields
 * under `access`), so they reach the journal with the agent's own logs; the
 * rest of Envoy's output stays at debug. Pure.
 */
import { ACCESS_LOG_KIND } from '../xds/resources/access-log.js';

/** The fields of an access log line, or undefined for any other output line. */
export function parseAccessLogLine(line: string): Record<string, unknown> | undefined {
  const text = line.trim();
  if (!text.startsWith('{') || !text.includes(`"kind":"${ACCESS_LOG_KIND}"`)) return undefined;
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return undefined;
    return (parsed as Record<string, unknown>).kind === ACCESS_LOG_KIND ? (parsed as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
