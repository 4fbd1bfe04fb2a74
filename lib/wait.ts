/** Polling: wait until a real peer reports a state (tests, the demo). */

export interface WaitOptions {
  timeoutMs?: number;
  intervalMs?: number;
  /** What is being waited for, for the error message. */
  what?: string;
  /** Checked before each probe: a reason to stop waiting at once (a process that exited). */
  fatal?: () => string | undefined;
}

export async function waitFor<T>(probe: () => Promise<T | undefined>, options: WaitOptions = {}): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const intervalMs = options.intervalMs ?? 50;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    const fatal = options.fatal?.();
    if (fatal !== undefined) throw new Error(`stopped waiting for ${options.what ?? 'a condition'}: ${fatal}`);
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const why = lastError instanceof Error ? `: last error ${lastError.message}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${options.what ?? 'a condition'}${why}`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
