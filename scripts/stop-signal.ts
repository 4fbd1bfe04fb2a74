/** Resolves on the first SIGINT (Ctrl-C) or SIGTERM: the demos run until then. */
export function untilStopSignal(): Promise<void> {
  return new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
}
