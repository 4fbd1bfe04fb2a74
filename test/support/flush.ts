/**
 * Lets pending promise chains run: `turns` turns of the event loop (setImmediate),
 * for unit tests whose code under test is driven by fakes (clock, Consul) and
 * does no real I/O. Work that touches the disk or the network is waited for
 * with waitFor (wait.ts) instead.
 */
export async function flush(turns = 30): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((resolve) => setImmediate(resolve));
}
