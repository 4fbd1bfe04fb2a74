/**
 * Durations as operators write them in config and workload files ("500ms",
 * "5s", "1m", "1h"), the form Consul accepts too. Parsed to milliseconds.
 */
import * as z from 'zod';

const DURATION = /^(\d+)(ms|s|m|h)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };

/** Milliseconds of a duration string, or undefined when it is not one. */
export function parseDuration(text: string): number | undefined {
  const match = DURATION.exec(text);
  if (match === null) return undefined;
  return Number(match[1]) * (UNIT_MS[match[2] as string] as number);
}

/**
 * A new zod schema for a duration string, kept as text (Consul takes the same
 * text). A function, as every schema of the agent is: schemas are built for a
 * parse and dropped after it (agent/config/schema.ts says why).
 */
export function durationText() {
  return z.string().refine((s) => parseDuration(s) !== undefined, {
    message: 'must be a duration such as "500ms", "5s", "1m" or "1h"',
  });
}

/** A new zod schema for a positive duration, parsed to milliseconds. */
export function durationMs() {
  return durationText()
    .transform((s) => parseDuration(s) as number)
    .refine((ms) => ms > 0, 'must be greater than zero');
}
