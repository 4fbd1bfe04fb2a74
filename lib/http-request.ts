/**
 * One HTTP(S) request on node:http, for the long-running agent: the Envoy
 * admin client and the agent's own HTTP health checks. Not the global
 * `fetch`: its first call loads undici (its JavaScript and its WebAssembly
 * HTTP parser), which measured 9 MB more resident memory than node:http for
 * the same GET in a bare `node` (52 MB against 43 MB, at the agent's V8
 * flags), and the agent already loads node:http for its status server and
 * Consul. Redirects are followed like fetch and Go's client do (at most 10),
 * the whole request, body included, has one deadline, and the body is cut at
 * `maxBodyBytes` so a hostile endpoint cannot fill the agent's memory.
 * `mesh-agent doctor` sends its Consul, status and Envoy admin requests through
 * it too: the agent runs with --jitless, under which node has no WebAssembly,
 * so fetch (undici's parser) cannot run in the agent's program at all.
 */
import http from 'node:http';
import https from 'node:https';

export interface HttpAnswer {
  readonly status: number;
  readonly body: string;
}

export interface HttpRequestOptions {
  readonly method?: 'GET' | 'POST';
  readonly timeoutMs: number;
  /** Bytes of body kept; the rest is read and dropped (default 4 MiB). */
  readonly maxBodyBytes?: number;
  /** Redirects followed before the answer is taken as is (default 10; 0 turns following off). */
  readonly maxRedirects?: number;
  /** Request headers (connection: close is always sent); dropped after a redirect to another origin. */
  readonly headers?: Readonly<Record<string, string>>;
  /** Request body (sent with its content-length); dropped where a redirect turns the request into a GET. */
  readonly body?: string;
}

const DEFAULT_MAX_BODY = 4 * 1024 * 1024;
const DEFAULT_MAX_REDIRECTS = 10;

export class HttpRequestError extends Error {
  constructor(
    message: string,
    readonly code: 'MESH_E_HTTP_TIMEOUT' | 'MESH_E_HTTP_URL' | 'MESH_E_HTTP_FAILED' | 'MESH_E_HTTP_REDIRECTS',
  ) {
    super(message);
    this.name = 'HttpRequestError';
  }
}

interface Attempt {
  readonly method: string;
  readonly deadline: number;
  readonly maxBody: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string | undefined;
}

function once(url: URL, attempt: Attempt): Promise<{ status: number; body: string; location?: string }> {
  const { method, deadline, maxBody, body } = attempt;
  const client = url.protocol === 'https:' ? https : url.protocol === 'http:' ? http : undefined;
  if (client === undefined)
    return Promise.reject(new HttpRequestError(`unsupported URL scheme ${url.protocol} in ${url.href}`, 'MESH_E_HTTP_URL'));
  return new Promise((resolve, reject) => {
    const left = Math.max(1, deadline - Date.now());
    const headers: Record<string, string | number> = { ...attempt.headers, connection: 'close' };
    if (body !== undefined) headers['content-length'] = Buffer.byteLength(body);
    const request = client.request(url, { method, agent: false, headers }, (response) => {
      const chunks: Buffer[] = [];
      let kept = 0;
      response.on('data', (chunk: Buffer) => {
        if (kept >= maxBody) return;
        const slice = chunk.length > maxBody - kept ? chunk.subarray(0, maxBody - kept) : chunk;
        chunks.push(slice);
        kept += slice.length;
      });
      response.once('end', () => {
        clearTimeout(timer);
        const location = response.headers.location;
        resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), ...(location ? { location } : {}) });
      });
      response.once('error', (err) => {
        clearTimeout(timer);
        reject(new HttpRequestError(`${method} ${url.href}: ${err.message}`, 'MESH_E_HTTP_FAILED'));
      });
    });
    const timer = setTimeout(() => {
      request.destroy(new HttpRequestError(`${method} ${url.href}: no answer within the timeout`, 'MESH_E_HTTP_TIMEOUT'));
    }, left);
    request.once('error', (err) => {
      clearTimeout(timer);
      reject(err instanceof HttpRequestError ? err : new HttpRequestError(`${method} ${url.href}: ${err.message}`, 'MESH_E_HTTP_FAILED'));
    });
    request.end(body);
  });
}

/** Sends one request (following redirects) and resolves with the final status and body; rejects with an HttpRequestError. */
export async function httpRequest(target: string, options: HttpRequestOptions): Promise<HttpAnswer> {
  let url: URL;
  try {
    url = new URL(target);
  } catch {
    throw new HttpRequestError(`not a URL: ${target}`, 'MESH_E_HTTP_URL');
  }
  let method = options.method ?? 'GET';
  let body = options.body;
  const deadline = Date.now() + options.timeoutMs;
  const maxBody = options.maxBodyBytes ?? DEFAULT_MAX_BODY;
  const maxRedirects = options.maxRedirects ?? DEFAULT_MAX_REDIRECTS;
  let headers = options.headers ?? {};
  for (let hop = 0; ; hop++) {
    const answer = await once(url, { method, deadline, maxBody, headers, body });
    const redirect = answer.location !== undefined && [301, 302, 303, 307, 308].includes(answer.status);
    if (!redirect || maxRedirects === 0) return { status: answer.status, body: answer.body };
    if (hop >= maxRedirects) throw new HttpRequestError(`${target}: more than ${maxRedirects} redirects`, 'MESH_E_HTTP_REDIRECTS');
    const next = new URL(answer.location as string, url);
    // A redirect to another origin gets none of the caller's headers (a Consul token must not follow it elsewhere).
    if (next.origin !== url.origin) headers = {};
    url = next;
    // As fetch does: a 303, and a POST answered by 301/302, go on as GET.
    if (answer.status === 303 || (method === 'POST' && (answer.status === 301 || answer.status === 302))) {
      method = 'GET';
      body = undefined;
    }
  }
}
