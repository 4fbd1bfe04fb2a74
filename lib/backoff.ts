/**
 * Retry delays: exponential from `initialMs`, capped at `maxMs`, with "equal
 * jitter" (half fixed, half random) so many agents do not retry in step. Pure.
 */
export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
}

/** The delay before jitter: initialMs doubled per attempt, at most maxMs. */
export function backoffCeiling(policy: BackoffPolicy, attempt: number): number {
  return Math.min(policy.maxMs, policy.initialMs * 2 ** Math.min(attempt, 30));
}

export function backoffDelay(policy: BackoffPolicy, attempt: number, random: () => number = Math.random): number {
  const exp = backoffCeiling(policy, attempt);
  return Math.round(exp / 2 + (exp / 2) * random());
}
