/** Polling for integration tests: wait until a real peer reports a state. */

export { type WaitOptions, waitFor } from '../../lib/wait.js';

/** GET a URL on loopback; resolves with status and body text. */
export async function httpGet(url: string, init: RequestInit = {}): Promise<{ status: number; body: string; headers: Headers }> {
  const response = await fetch(url, { ...init, signal: AbortSignal.timeout(5_000) });
  return { status: response.status, body: await response.text(), headers: response.headers };
}
